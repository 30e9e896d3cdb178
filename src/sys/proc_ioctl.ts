/**
 * A `/proc/self` file used through ioctls (`PROCMAP_QUERY` on
 * `/proc/self/maps`, `PAGEMAP_SCAN` on `/proc/self/pagemap`): its buffers
 * made and the kernel's support tested once per JS realm (each Worker has
 * its own), its descriptor open only during a call or a
 * {@linkcode ProcIoctlFile.within} scope, so none outlives the call.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { ProcIoctlFile } from "./proc_ioctl.ts";
 * const c = libc();
 * const status = new ProcIoctlFile({
 *   path: "/proc/self/status",
 *   feature: "status",
 *   setup: (_c, fd) => ({ fd }),
 * });
 * const opened = status.within(c, () => status.open(c));
 * console.log(typeof opened === "string" ? opened : "opened");
 * ```
 *
 * @module
 */
import type { Libc } from "./libc.ts";

/** What a {@linkcode ProcIoctlFile} keeps between calls: at least its descriptor (-1 when closed). */
export interface IoctlSession {
  /** The open descriptor, -1 between calls. */
  fd: number;
}

/** How a {@linkcode ProcIoctlFile} opens and tests its file. */
export interface ProcIoctlFileOptions<S extends IoctlSession> {
  /** The file, e.g. `"/proc/self/maps"`. */
  path: string;
  /** The feature's name for messages, e.g. `"PROCMAP_QUERY"`. */
  feature: string;
  /**
   * Makes the session on the first open descriptor and tests the feature
   * with it: the session, or why the kernel does not support it (then
   * remembered for the realm).
   */
  setup: (c: Libc, fd: number) => S | string;
}

/**
 * The file, its session and the open scopes of one realm.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { ProcIoctlFile } from "./proc_ioctl.ts";
 * const c = libc();
 * const maps = new ProcIoctlFile({
 *   path: "/proc/self/maps",
 *   feature: "maps",
 *   setup: (_c, fd) => ({ fd }),
 * });
 * const s = maps.open(c);
 * maps.release(c);
 * console.log(typeof s === "string" ? s : s.fd >= 0, maps.tested);
 * ```
 */
export class ProcIoctlFile<S extends IoctlSession> {
  #options: ProcIoctlFileOptions<S>;
  #session: S | undefined;
  #unavailable: string | undefined;
  #scopes = 0;

  /**
   * Nothing is opened until the first {@linkcode ProcIoctlFile.open}.
   *
   * @param options The file, the feature's name and its setup.
   */
  constructor(options: ProcIoctlFileOptions<S>) {
    this.#options = options;
  }

  /** The feature was tested and works here. */
  get tested(): boolean {
    return this.#session !== undefined;
  }

  /**
   * The session with the file open, or why it cannot be used. A failed
   * open (EMFILE near the descriptor limit, say) is not remembered: it
   * sends this call to the caller's fallback, not every later one.
   *
   * @param c This process's libc.
   * @returns The session, or the reason.
   */
  open(c: Libc): S | string {
    if (this.#unavailable !== undefined) return this.#unavailable;
    const known = this.#session;
    if (known !== undefined && known.fd >= 0) return known;
    let fd = -1;
    try {
      fd = c.openRead(this.#options.path);
      if (known !== undefined) {
        known.fd = fd;
        return known;
      }
      const s = this.#options.setup(c, fd);
      if (typeof s === "string") {
        c.close(fd);
        this.#unavailable = s;
        return s;
      }
      this.#session = s;
      return s;
    } catch (e) {
      if (fd >= 0) c.close(fd);
      return `${this.#options.feature} cannot be used: ${(e as Error).message}`;
    }
  }

  /**
   * Closes the file unless a {@linkcode ProcIoctlFile.within} scope holds it.
   *
   * @param c This process's libc.
   */
  release(c: Libc): void {
    const s = this.#session;
    if (this.#scopes > 0 || s === undefined || s.fd < 0) return;
    const fd = s.fd;
    s.fd = -1;
    c.close(fd);
  }

  /**
   * Runs `fn` with the file opened once for all the calls it makes, and
   * closed when it returns or throws (scopes nest; the outermost closes).
   *
   * @param c This process's libc.
   * @param fn The calls.
   * @returns What `fn` returns.
   */
  within<T>(c: Libc, fn: () => T): T {
    this.#scopes++;
    try {
      return fn();
    } finally {
      this.#scopes--;
      this.release(c);
    }
  }
}
