/** Types of scripts/check_layers.mjs for the type checker. */
export declare function checkLayers(
  root?: string,
): { files: number; problems: string[] };
