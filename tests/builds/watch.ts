// One child under watch: its read-only LOAD bytes are read from outside
// before anything is primed, and after every command the parent compares
// them again and checks the figures the child printed against smaps.
import type { PrimeOutcomeData } from "../../mod.ts";
import { ChildDied, type Driven, startDriven } from "./driver.ts";
import type { Build } from "./fetch.ts";
import {
  compareRanges,
  flipByte,
  hugeIn,
  type Layout,
  layoutOf,
  lengthOf,
  lockedIn,
  movedOffFile,
  primedRanges,
  type Range,
  readRanges,
  relroHolds2M,
  smapsOf,
  thpEnabled,
  writeByte,
} from "./proc.ts";

/** What the runs of one build in one mode found. */
export interface Tally {
  /** Child processes started. */
  processes: number;
  /** Processes that died (signal, non-zero exit, hang), with how and when. */
  crashes: string[];
  /** Bytes that changed, figures that disagree with smaps, wrong results. */
  mismatches: string[];
  /** Bytes compared through /proc/<pid>/mem. */
  bytes: number;
  /** Text on 2 MiB pages after each remap, in % (smaps, from outside). */
  coverage: number[];
  /** Outcomes with `ok: true`, of those printed. */
  outcomesOk: number;
  outcomes: number;
  /** Processes where a whole 2 MiB page fit in PT_GNU_RELRO (ASLR draw). */
  relroDraws: number;
  /** Processes where the remap moved part of RELRO off the file. */
  relroPrimed: number;
  /** Processes running with THP disabled (PR_SET_THP_DISABLE). */
  thpOff: number;
  /** Bytes locked per mlock run (smaps). */
  locked: number[];
  /** Shared copies created and reused. */
  created: number;
  reused: number;
  /** Regions restore() reported as failed. */
  restoreFailed: number;
  /** Remaps per backend the library chose. */
  backends: Record<string, number>;
}

/** An empty tally. */
export function newTally(): Tally {
  return {
    processes: 0,
    crashes: [],
    mismatches: [],
    bytes: 0,
    coverage: [],
    outcomesOk: 0,
    outcomes: 0,
    relroDraws: 0,
    relroPrimed: 0,
    thpOff: 0,
    locked: [],
    created: 0,
    reused: 0,
    restoreFailed: 0,
    backends: {},
  };
}

const hex = (n: number) => "0x" + n.toString(16);

/** A started child with its layout and the bytes before any priming. */
export class Watched {
  /** Set once the child died or a check failed: no more commands. */
  dead = false;
  private baseWork = "";
  private constructor(
    readonly d: Driven,
    readonly layout: Layout,
    readonly ranges: Range[],
    readonly before: Buffer[],
    readonly label: string,
  ) {}

  /** Starts a child, reads its layout and bytes, runs `work` once. */
  static async start(
    build: Build,
    lib: string,
    t: Tally,
    label: string,
  ): Promise<Watched> {
    const d = await startDriven(build, lib);
    t.processes++;
    try {
      const layout = layoutOf(d.pid, build.exe);
      const ranges = primedRanges(d.pid, layout);
      const w = new Watched(
        d,
        layout,
        ranges,
        readRanges(d.pid, ranges),
        label,
      );
      if (relroHolds2M(layout)) t.relroDraws++;
      if (thpEnabled(d.pid) === false) t.thpOff++;
      w.baseWork = await d.send("work");
      return w;
    } catch (e) {
      d.kill();
      throw e;
    }
  }

  /**
   * The control: flips a byte in the middle of the first watched range
   * through /proc/<pid>/mem, checks that the comparison finds exactly that
   * byte, and puts it back. Throws when the byte check is blind.
   */
  control(): void {
    const r = this.ranges[0];
    const at = r.start + Math.floor((r.end - r.start) / 2);
    const was = flipByte(this.d.pid, at);
    let seen;
    try {
      seen = compareRanges(this.d.pid, this.ranges, this.before);
    } finally {
      writeByte(this.d.pid, at, was);
    }
    const after = compareRanges(this.d.pid, this.ranges, this.before);
    if (seen.differing !== 1 || seen.first !== at.toString(16)) {
      throw new Error(
        `control: a byte flipped at ${hex(at)} through /proc/pid/mem was ` +
          `seen as ${seen.differing} differing byte(s) (first ${seen.first})`,
      );
    }
    if (after.differing !== 0) {
      throw new Error(`control: ${after.differing} bytes differ after undo`);
    }
  }

  /** Runs one command and checks what it left; records failures in `t`. */
  async step(cmd: string, t: Tally): Promise<void> {
    if (this.dead) return;
    const name = cmd.split(" ", 1)[0];
    try {
      const reply = await this.d.send(cmd);
      if (name === "work") {
        if (reply !== this.baseWork) {
          this.fail(t, `work gave ${reply}, before ${this.baseWork}`);
        }
        return;
      }
      this.compare(t, name);
      const smaps = smapsOf(this.d.pid);
      if (name === "remap" || name === "remapmlock") {
        this.checkRemap(t, JSON.parse(reply), smaps);
      }
      if (name === "mlock" || name === "remapmlock") {
        this.checkMlock(t, JSON.parse(reply), smaps, name === "mlock");
      }
      if (name === "restore") {
        t.restoreFailed += (JSON.parse(reply).failed ?? []).length;
      }
    } catch (e) {
      this.died(t, e);
    }
  }

  /** Sends `exit` and checks the exit status. */
  async exit(t: Tally): Promise<void> {
    if (this.dead) return this.d.kill();
    try {
      await this.d.exit();
    } catch (e) {
      this.died(t, e);
    }
  }

  private died(t: Tally, e: unknown): void {
    this.dead = true;
    this.d.kill();
    if (e instanceof ChildDied) {
      t.crashes.push(`${this.label}: ${e.message}`);
    } else {
      t.mismatches.push(`${this.label}: ${String(e)}`);
    }
  }

  private fail(t: Tally, what: string): void {
    t.mismatches.push(`${this.label} (pid ${this.d.pid}): ${what}`);
  }

  private compare(t: Tally, after: string): void {
    const c = compareRanges(this.d.pid, this.ranges, this.before);
    t.bytes += c.bytes;
    if (c.differing > 0) {
      this.fail(
        t,
        `${c.differing} of ${c.bytes} bytes differ after ${after} ` +
          `(${c.unreadable} unreadable chunk(s); first at 0x${c.first})`,
      );
    }
  }

  private checkRemap(
    t: Tally,
    out: PrimeOutcomeData,
    smaps: ReturnType<typeof smapsOf>,
  ): void {
    t.outcomes++;
    if (out.ok) t.outcomesOk++;
    const { layout } = this;
    const text = hugeIn(smaps, layout.text);
    if (out.remap?.pageSize !== "4k") {
      t.coverage.push((100 * text.low) / lengthOf(layout.text));
    }
    if (layout.relro && movedOffFile(smaps, layout.relro, layout)) {
      t.relroPrimed++;
    }
    const r = out.remap;
    if (!r) return;
    t.backends[r.backend] = (t.backends[r.backend] ?? 0) + 1;
    const rodata = hugeIn(smaps, layout.rodata);
    if (out.ok && r.pageSize === "2m" && text.high === 0 && rodata.high === 0) {
      this.fail(
        t,
        `ok: true for a 2 MiB remap (backend ${r.backend}) but smaps shows ` +
          `no byte of text or rodata on 2 MiB pages`,
      );
    }
    t.created += r.share?.created ?? 0;
    t.reused += r.share?.reused ?? 0;
    for (const kind of ["text", "rodata"] as const) {
      const ranges = layout[kind];
      const said = r[kind];
      const seen = hugeIn(smaps, ranges);
      if (said.bytes !== lengthOf(ranges)) {
        this.fail(
          t,
          `${kind}.bytes ${said.bytes} but the ELF's ${kind} LOAD ranges ` +
            `hold ${lengthOf(ranges)}`,
        );
      }
      if (said.huge < seen.low || said.huge > seen.high) {
        this.fail(
          t,
          `${kind}.huge ${said.huge} but smaps shows ${seen.low}..${seen.high}`,
        );
      }
    }
    for (const g of r.regions) {
      if (g.status !== "remapped") continue;
      const range = { start: g.start, end: g.end };
      if (!movedOffFile(smaps, range, layout)) {
        this.fail(
          t,
          `region ${hex(g.start)}-${hex(g.end)} reported remapped, ` +
            `smaps shows the file there`,
        );
      }
      // `huge` counts the region's original content, [dataStart, dataEnd).
      const seen = hugeIn(smaps, [{ start: g.dataStart, end: g.dataEnd }]);
      if (g.huge < seen.low - 1 || g.huge > seen.high + 1) {
        this.fail(
          t,
          `region ${hex(g.dataStart)}-${hex(g.dataEnd)} huge ${g.huge} but ` +
            `smaps shows ${seen.low}..${seen.high}`,
        );
      }
    }
  }

  private checkMlock(
    t: Tally,
    out: PrimeOutcomeData,
    smaps: ReturnType<typeof smapsOf>,
    count: boolean,
  ): void {
    if (count) {
      t.outcomes++;
      if (out.ok) t.outcomesOk++;
    }
    let sum = 0;
    for (const s of out.segments) {
      if (s.status !== "ok" || !s.actions.includes("mlock")) continue;
      const seen = lockedIn(smaps, [{ start: s.start, end: s.end }]);
      sum += s.locked;
      if (seen.unlocked > 0) {
        this.fail(
          t,
          `segment ${hex(s.start)}-${hex(s.end)} reported locked but ` +
            `${seen.unlocked} VMA(s) in it lack VM_LOCKED`,
        );
      }
      if (s.locked < seen.low || s.locked > seen.high) {
        this.fail(
          t,
          `segment ${hex(s.start)} locked ${s.locked} but smaps shows ` +
            `${seen.low}..${seen.high}`,
        );
      }
    }
    if (sum !== out.totals.locked) {
      this.fail(t, `totals.locked ${out.totals.locked}, segments sum ${sum}`);
    }
    const all = lockedIn(smaps, this.layout.loads);
    if (out.ok && all.unlocked > 0) {
      this.fail(
        t,
        `ok but ${all.unlocked} VMA(s) of the executable's LOAD ranges ` +
          `lack VM_LOCKED`,
      );
    }
    t.locked.push(all.low);
  }
}
