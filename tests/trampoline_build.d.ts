/** Types of trampoline/build.mjs for the type checker. */
export declare const SOURCES: string[];
export declare function sourceHash(): string;
export declare function abiModule(header?: string): string;
