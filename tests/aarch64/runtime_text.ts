// Run by tests/aarch64/runtimes_aarch64_test.ts inside an arm64 Deno or Bun
// under qemu-user: mlock and populate through prime(), the loaded objects
// listed by the shipped object's native dl_iterate_phdr callback, then the
// shipped trampoline swaps the runtime's own text (2 MiB-aligned part, THP and 4 KiB
// records) onto an anonymous copy and restores the file, with the protection
// /proc/self/maps gives. Prints one "RESULT <json>" line per step.
//
// Not prime().remap(): under qemu-user 7.2, /proc/self/smaps (which the
// planner reads) shows the host's protection of the guest's pages, r-- for
// the guest's r-x text, so the copy would be made read-only and the first
// instruction fetched from it would fault; /proc/self/maps is emulated and
// shows r-x.
import { prime } from "../../mod.ts";
import { libc } from "../../src/sys/libc.ts";
import { addressOf, memory, openLibrary } from "../../src/sys/ffi.ts";
import {
  LISTER_MEMFD_NAME,
  parseObjectList,
  sharedObjectMemfd,
} from "../../src/sys/loader.ts";
import { parseMaps } from "../../src/sys/maps.ts";
import { loadTrampoline } from "../../src/remap/trampoline.ts";

const HUGE = 2 * 1024 * 1024;
const c = libc();
const exe = c.readlink("/proc/self/exe");

const locked = prime().mlock(true).populate(true).run();
console.log(
  "RESULT",
  JSON.stringify({ step: "mlock", ok: locked.ok, ...locked.toJSON().totals }),
);

// The lister itself, not listLoadedObjects (which would fall back to a
// JavaScript callback unseen if the native one failed here).
const lister = sharedObjectMemfd(c, LISTER_MEMFD_NAME);
const lib = openLibrary(
  [lister.path],
  {
    pp_list_objects: { args: ["u64", "u64", "u64"], returns: "u64" },
  } as const,
);
const listBuf = new Uint8Array(1 << 16);
const used = lib.symbols.pp_list_objects!(
  c.symbolAddress("dl_iterate_phdr"),
  addressOf(listBuf),
  listBuf.length,
);
const listed = used > 0 && used <= listBuf.length
  ? parseObjectList(listBuf.subarray(0, used))
  : [];
lib.close();
c.close(lister.fd);
console.log(
  "RESULT",
  JSON.stringify({
    step: "list",
    bytes: used,
    cap: listBuf.length,
    names: listed.map((o) => o.name),
    headers: listed.filter((o) => o.phnum > 0).length,
  }),
);

const text = parseMaps(c.readText("/proc/self/maps")).find((v) =>
  v.path === exe && v.perms.startsWith("r-x")
)!;
const start = Math.ceil(text.start / HUGE) * HUGE;
const end = Math.floor(text.end / HUGE) * HUGE;
const fd = c.openRead(exe);
const fileOffset = text.offset + (start - text.start);

/** Bytes of [start, end) that differ from the file. */
function mismatches(): number {
  let bad = 0;
  for (let at = start; at < end; at += 1 << 20) {
    const file = c.pread(fd, fileOffset + (at - start), 1 << 20);
    const mem = memory(at, file.length);
    for (let i = 0; i < file.length; i++) if (file[i] !== mem[i]) bad++;
  }
  return bad;
}

/** Work done by the runtime's native code (JSON, text encoding). */
function work(): number {
  const rows = Array.from({ length: 20000 }, (_, i) => ({ i, s: `${i}` }));
  return JSON.stringify(rows).length +
    new TextEncoder().encode("x".repeat(100000)).length;
}

const mappedAt = () =>
  parseMaps(c.readText("/proc/self/maps")).find((v) =>
    v.start <= start && start < v.end
  )!.path;
const expected = work();
const t = loadTrampoline(c);
const record = {
  start,
  len: end - start,
  dataStart: start,
  dataLen: end - start,
  prot: 5, // PROT_READ | PROT_EXEC, as /proc/self/maps says
  fd,
  fileOffset,
};
for (const page4k of [false, true]) {
  const [swap] = t.run([{ op: "swap", page4k, ...record }]);
  const swapped = {
    step: swap.step,
    errno: swap.errno,
    path: mappedAt(),
    mismatches: mismatches(),
    works: work() === expected,
  };
  const [restore] = t.run([{ op: "restore", page4k, ...record }]);
  console.log(
    "RESULT",
    JSON.stringify({
      step: page4k ? "swap 4k" : "swap thp",
      bytes: end - start,
      swap: swapped,
      restore: {
        step: restore.step,
        errno: restore.errno,
        path: mappedAt(),
        mismatches: mismatches(),
        works: work() === expected,
      },
    }),
  );
}
