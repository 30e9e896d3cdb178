/*
 * The physical limit of 2 MiB code pages on this machine: calls to
 * functions spread one per 4 KiB page over N MiB of code, in random order,
 * with the code on 2 MiB pages and on 4 KiB pages (same bytes, same layout,
 * same call sequence), timed in paired, interleaved repetitions.
 *
 *   itlb VARIANT REPS MIB...      prints one JSON document on stdout
 *                                 (MIB may be a fraction, e.g. 0.0625)
 *
 * The environment variable ITLB_SAMPLE_MS sets the length of one timed
 * sample (default 20 ms).
 *
 * Variants (what one iteration does; "the spread" is the code or data in
 * the 2 MiB-page or the 4 KiB-page region, "item" a function or pointer):
 *   call       one call into the spread (one function per 4 KiB page, in a
 *              random order): pure instruction fetch
 *   syscall    a call, then one getppid() system call (kernel entry + exit)
 *   pingpong   a call, then a futex round trip with a second thread, which
 *              also calls a function of the spread before it answers
 *   shootdown  a call, while a second thread maps, touches and unmaps a
 *              page in a loop (each munmap sends a TLB shootdown to the
 *              CPU running the calls, when it runs on another one)
 *   vdso       a call, then clock_gettime(CLOCK_MONOTONIC) through the
 *              vDSO (user code only, no kernel entry)
 *   sysread    a call, then read() of 4 KiB from /dev/zero (a system call
 *              that does work: VFS, a 4 KiB copy to user memory)
 *   cpuid      a call, then one CPUID instruction (in a VM: an exit to the
 *              hypervisor and back, no guest kernel entry)      [x86-64]
 *   sysonly    no call: a loop of getppid() system calls that is itself
 *              code in the region (page 0), so the only user code that
 *              runs between kernel entries is on the page under test
 *                                                                [x86-64]
 *   pages      one call into every function of the spread (N 4 KiB pages,
 *              all within the first 2 MiB for N <= 512)
 *   syspages   pages, then one getppid(): N distinct 4 KiB pages of code
 *              between two kernel entries
 *   vdsopages, readpages, cpuidpages
 *              pages, then what vdso, sysread and cpuid add to a call
 *   splitpages, syssplitpages
 *              pages and syspages, with the 4 KiB-page region built on 2 MiB
 *              pages and then split in place (MADV_COLD on one 4 KiB page
 *              per 2 MiB splits the huge page; then MADV_NOHUGEPAGE so that
 *              khugepaged leaves it): the same physical memory as a 2 MiB
 *              region, mapped with 4 KiB entries
 *   spread8    pages, with the N functions dealt round-robin over 8 2 MiB
 *              pages (N/8 distinct 4 KiB pages on each)
 *   sysspread8 spread8, then one getppid()
 *   hop        one call into each of K functions, each on its own 2 MiB
 *              of the spread (K = MIB / 2): K distinct 2 MiB pages (or K
 *              distinct 4 KiB pages) per iteration
 *   syshop     hop, then one getppid(): K distinct 2 MiB pages of code
 *              between two kernel entries
 *   data       one load, chasing pointers that sit one per 4 KiB page of
 *              the spread in a random order (data instead of code fetch)
 *   datasys    data, then one getppid()
 *   datapacked data, with the same number of pointers packed 128 bytes
 *              apart (32 per 4 KiB page instead of one)
 *   datapages  one load from every 4 KiB page of the spread (N loads)
 *   datasyspages  datapages, then one getppid(): N distinct 4 KiB pages
 *              of data between two kernel entries
 *   datahop    K loads, one pointer on each 2 MiB of the spread
 *   datasyshop datahop, then one getppid(): K distinct 2 MiB pages of
 *              data between two kernel entries
 *
 * Each region is anonymous memory aligned to 2 MiB: the huge one is given
 * MADV_HUGEPAGE before it is written (and MADV_COLLAPSE if some of it is
 * still on 4 KiB pages), the small one MADV_NOHUGEPAGE; code regions are
 * then made read+exec, data regions read-only. AnonHugePages of each region
 * is read back from /proc/self/smaps and reported, so the runner can check
 * the page sizes.
 *
 * Every function (or pointer) sits at a different cache line of its page
 * (random, the same in both regions), so they do not all fall in the same
 * cache set. x86-64 and arm64 (cpuid and sysonly: x86-64 only).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PAGE 4096UL
#define HUGE (2UL << 20)
#define LINE 64UL
#define PACKED 128UL /* datapacked: bytes between two pointers */

typedef unsigned (*fn_t)(unsigned);

/* Where the items (functions or pointers) of a region sit. */
enum layout {
  PER_PAGE,  /* code: one function per 4 KiB page */
  PER_HUGE,  /* code: one function per 2 MiB */
  PER_8,     /* code: functions dealt round-robin over 8 x 2 MiB */
  DATA_PAGE, /* data: one pointer per 4 KiB page */
  DATA_PACK, /* data: pointers PACKED bytes apart */
  DATA_HUGE  /* data: one pointer per 2 MiB */
};

/* What follows the call(s) or load(s) of one iteration. */
enum after { NOTHING, GETPPID, FUTEX, VDSO, READ4K, CPUID, LOOP };

/* A variant: layout, one item per iteration (cycled) or all of them, what
 * follows, and the second thread if any. */
struct variant {
  const char *name;
  enum layout layout;
  int all;
  enum after after;
  void *(*thread)(void *);
  int split; /* the 4 KiB-page region: 2 MiB pages split in place */
};

static void *partner(void *arg);
static void *unmapper(void *arg);

static const struct variant VARIANTS[] = {
    {"call", PER_PAGE, 0, NOTHING, NULL, 0},
    {"syscall", PER_PAGE, 0, GETPPID, NULL, 0},
    {"pingpong", PER_PAGE, 0, FUTEX, partner, 0},
    {"shootdown", PER_PAGE, 0, NOTHING, unmapper, 0},
    {"vdso", PER_PAGE, 0, VDSO, NULL, 0},
    {"sysread", PER_PAGE, 0, READ4K, NULL, 0},
    {"cpuid", PER_PAGE, 0, CPUID, NULL, 0},
    {"sysonly", PER_PAGE, 0, LOOP, NULL, 0},
    {"pages", PER_PAGE, 1, NOTHING, NULL, 0},
    {"syspages", PER_PAGE, 1, GETPPID, NULL, 0},
    {"vdsopages", PER_PAGE, 1, VDSO, NULL, 0},
    {"readpages", PER_PAGE, 1, READ4K, NULL, 0},
    {"cpuidpages", PER_PAGE, 1, CPUID, NULL, 0},
    {"splitpages", PER_PAGE, 1, NOTHING, NULL, 1},
    {"syssplitpages", PER_PAGE, 1, GETPPID, NULL, 1},
    {"spread8", PER_8, 1, NOTHING, NULL, 0},
    {"sysspread8", PER_8, 1, GETPPID, NULL, 0},
    {"hop", PER_HUGE, 1, NOTHING, NULL, 0},
    {"syshop", PER_HUGE, 1, GETPPID, NULL, 0},
    {"data", DATA_PAGE, 0, NOTHING, NULL, 0},
    {"datasys", DATA_PAGE, 0, GETPPID, NULL, 0},
    {"datapacked", DATA_PACK, 0, NOTHING, NULL, 0},
    {"datapages", DATA_PAGE, 1, NOTHING, NULL, 0},
    {"datasyspages", DATA_PAGE, 1, GETPPID, NULL, 0},
    {"datahop", DATA_HUGE, 1, NOTHING, NULL, 0},
    {"datasyshop", DATA_HUGE, 1, GETPPID, NULL, 0},
};
#define NVARIANTS (sizeof VARIANTS / sizeof VARIANTS[0])

static int is_code(enum layout l) {
  return l == PER_PAGE || l == PER_HUGE || l == PER_8;
}

struct region {
  uint8_t *base; /* 2 MiB aligned */
  long split_from_kib; /* split regions: AnonHugePages before the split */
  int split_same_frame; /* split regions: page 0's frame kept (-1: unknown) */
  size_t len;    /* mapped: the items' extent rounded up to 2 MiB */
  void **items;  /* items[i]: function or pointer i */
  fn_t loop;     /* sysonly: the system-call loop in page 0 */
  long anon_huge_kib;
};

static void die(const char *what) {
  fprintf(stderr, "itlb: %s: %s\n", what, strerror(errno));
  exit(2);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void) { /* splitmix64, fixed seed: same layout every run */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Writes `return x + imm` at p; returns bytes written. */
static size_t emit(uint8_t *p, uint32_t imm) {
#if defined(__x86_64__)
  p[0] = 0x8d; /* lea eax, [rdi + imm32] */
  p[1] = 0x87;
  memcpy(p + 2, &imm, 4);
  p[6] = 0xc3; /* ret */
  return 7;
#elif defined(__aarch64__)
  uint32_t add = 0x11000000u | ((imm & 0xfff) << 10); /* add w0, w0, #imm */
  uint32_t ret = 0xd65f03c0u;
  memcpy(p, &add, 4);
  memcpy(p + 4, &ret, 4);
  return 8;
#else
#error "itlb.c: x86-64 or arm64 only"
#endif
}

/* Writes `unsigned loop(unsigned n)`: n getppid() system calls, returns
 * the last result. x86-64 only; returns 0 elsewhere. */
static size_t emit_syscall_loop(uint8_t *p) {
#if defined(__x86_64__)
  static const uint8_t code[] = {
      0x49, 0x89, 0xf8,             /* mov r8, rdi */
      0xb8, SYS_getppid, 0, 0, 0,   /* L: mov eax, SYS_getppid */
      0x0f, 0x05,                   /* syscall (clobbers rcx, r11) */
      0x49, 0xff, 0xc8,             /* dec r8 */
      0x75, 0xf4,                   /* jnz L */
      0xc3};                        /* ret */
  memcpy(p, code, sizeof code);
  return sizeof code;
#else
  (void)p;
  return 0;
#endif
}

/* AnonHugePages (kB) of the VMAs inside [start, end) from /proc/self/smaps. */
static long anon_huge_kib(uintptr_t start, uintptr_t end) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) die("open /proc/self/smaps");
  char line[512];
  int in = 0;
  long total = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    long kb;
    if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') &&
        line[0] != ' ') {
      in = a >= start && b <= end;
    } else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) {
      total += kb;
    }
  }
  fclose(f);
  return total;
}

/* The page frame number of the page at p (0 when not readable). */
static uint64_t frame_of(const void *p) {
  FILE *f = fopen("/proc/self/pagemap", "rb");
  uint64_t e = 0;
  if (!f) return 0;
  if (fseek(f, (long)((uintptr_t)p / PAGE * 8), SEEK_SET) != 0 ||
      fread(&e, 8, 1, f) != 1)
    e = 0;
  fclose(f);
  return e & ((1ULL << 55) - 1);
}

/* Splits the 2 MiB pages of a region in place into 4 KiB entries. */
static void split_region(struct region *r) {
  r->split_from_kib = r->anon_huge_kib;
  uint64_t before = frame_of(r->base);
  for (size_t off = 0; off < r->len; off += HUGE)
    if (madvise(r->base + off + HUGE - PAGE, PAGE, MADV_COLD) != 0)
      die("madvise(MADV_COLD)");
  if (madvise(r->base, r->len, MADV_NOHUGEPAGE) != 0)
    die("madvise(MADV_NOHUGEPAGE)");
  uint64_t after = frame_of(r->base);
  r->split_same_frame = before && after ? before == after : -1;
  r->anon_huge_kib =
      anon_huge_kib((uintptr_t)r->base, (uintptr_t)r->base + r->len);
}

/* Offset of item i in a region of the given layout. */
static size_t offset_of(enum layout l, size_t i, const uint16_t *line_of) {
  switch (l) {
  case PER_HUGE:
  case DATA_HUGE: return i * HUGE + line_of[i] * LINE;
  case DATA_PACK: return i * PACKED;
  case PER_8: return (i % 8) * HUGE + (i / 8) * PAGE + line_of[i] * LINE;
  default: return i * PAGE + line_of[i] * LINE;
  }
}

static void make_region(struct region *r, enum layout l, size_t items,
                        int huge, const uint16_t *line_of,
                        const uint32_t *order) {
  /* A region under 2 MiB gets a 2 MiB mapping (a THP needs a whole aligned
   * 2 MiB in the VMA), of which only the first pages hold items. */
  size_t extent = offset_of(l, items - 1, line_of) + LINE;
  if (l == PER_8 && extent < 8 * HUGE) extent = 8 * HUGE;
  r->len = (extent + HUGE - 1) & ~(HUGE - 1);
  uint8_t *raw = mmap(NULL, r->len + HUGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) die("mmap");
  uint8_t *base = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
  if (base > raw) munmap(raw, base - raw);
  munmap(base + r->len, raw + r->len + HUGE - (base + r->len));
  if (madvise(base, r->len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
    die("madvise(MADV_HUGEPAGE/NOHUGEPAGE)");
  memset(base, 0xcc, r->len); /* int3 (x86) everywhere else */
  r->items = malloc(items * sizeof *r->items);
  if (!r->items) die("malloc");
  int code = is_code(l);
  for (size_t i = 0; i < items; i++) {
    uint8_t *p = base + offset_of(l, i, line_of);
    if (code) emit(p, (uint32_t)(i & 0xfff));
    r->items[i] = p;
  }
  r->loop = NULL;
  r->split_from_kib = 0;
  r->split_same_frame = -1;
  if (code) {
    /* The system-call loop: page 0, half a page away from function 0. */
    uint8_t *p = base + ((line_of[0] * LINE + PAGE / 2) & (PAGE - 1));
    if (emit_syscall_loop(p)) r->loop = (fn_t)(void *)p;
    __builtin___clear_cache((char *)base, (char *)base + r->len);
  } else { /* a cycle through the items in the order `order` */
    for (size_t j = 0; j < items; j++)
      *(void **)r->items[order[j]] = r->items[order[(j + 1) % items]];
  }
  if (mprotect(base, r->len, code ? PROT_READ | PROT_EXEC : PROT_READ) != 0)
    die("mprotect");
  r->base = base;
  r->anon_huge_kib = anon_huge_kib((uintptr_t)base, (uintptr_t)base + r->len);
  if (huge && (size_t)r->anon_huge_kib * 1024 < r->len) {
    madvise(base, r->len, MADV_COLLAPSE); /* best effort; checked below */
    r->anon_huge_kib =
        anon_huge_kib((uintptr_t)base, (uintptr_t)base + r->len);
  }
}

static void free_region(struct region *r) {
  munmap(r->base, r->len);
  free(r->items);
}

/* ---------------------------------------------------------- variants */

static _Atomic int turn; /* pingpong: 1 = partner's turn, 0 = main's */
static _Atomic int stop;
static void **volatile partner_fns;
static size_t partner_pages;
static volatile unsigned sink;
static int zero_fd = -1;
static char read_buf[PAGE];

static void futex_wait(_Atomic int *a, int v) {
  syscall(SYS_futex, a, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}
static void futex_wake(_Atomic int *a) {
  syscall(SYS_futex, a, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *partner(void *arg) {
  (void)arg;
  size_t k = 0;
  unsigned acc = 0;
  for (;;) {
    while (atomic_load(&turn) != 1) {
      if (atomic_load(&stop)) return NULL;
      futex_wait(&turn, 0);
    }
    if (atomic_load(&stop)) return NULL;
    void **fns = partner_fns;
    acc += ((fn_t)fns[(k * 7919) % partner_pages])(acc);
    k++;
    atomic_store(&turn, 0);
    futex_wake(&turn);
  }
  sink = acc;
  return NULL;
}

static void *unmapper(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    volatile char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap (unmapper)");
    p[0] = 1;
    munmap((void *)p, PAGE);
  }
  return NULL;
}

static unsigned cpuid0(void) {
#if defined(__x86_64__)
  unsigned a = 0, b, c = 0, d;
  __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
  return a ^ b ^ c ^ d;
#else
  return 0;
#endif
}

/* What follows the call(s) or load(s) of one iteration. */
static unsigned after(enum after what) {
  struct timespec t;
  switch (what) {
  case GETPPID: return (unsigned)syscall(SYS_getppid);
  case FUTEX:
    atomic_store(&turn, 1);
    futex_wake(&turn);
    while (atomic_load(&turn) != 0) futex_wait(&turn, 1);
    return 0;
  case VDSO:
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned)t.tv_nsec;
  case READ4K:
    if (read(zero_fd, read_buf, sizeof read_buf) != (ssize_t)sizeof read_buf)
      die("read /dev/zero");
    return (unsigned)read_buf[0];
  case CPUID: return cpuid0();
  default: return 0;
  }
}

/* Runs `iters` iterations of variant v over region g (n items, visited in
 * the order `order`, cycled); returns ns. */
static double run(const struct variant *v, const struct region *g,
                  const uint32_t *order, size_t n, size_t iters) {
  unsigned acc = 0;
  size_t j = 0;
  void **items = g->items;
  size_t per = v->all ? n : 1; /* items per iteration */
  partner_fns = items;
  double t0 = now_ns();
  if (v->after == LOOP) {
    acc = g->loop((unsigned)iters);
  } else if (is_code(v->layout)) {
    for (size_t i = 0; i < iters; i++) {
      for (size_t k = 0; k < per; k++) {
        acc += ((fn_t)items[order[j]])(acc);
        if (++j == n) j = 0;
      }
      acc += after(v->after);
    }
  } else { /* the pointers form one cycle through all items */
    void *p = items[order[0]];
    for (size_t i = 0; i < iters; i++) {
      for (size_t k = 0; k < per; k++) p = *(void *volatile *)p;
      acc += after(v->after);
    }
    acc += (unsigned)(uintptr_t)p;
  }
  double t = now_ns() - t0;
  sink = acc;
  return t;
}

/* Items of a size: functions or pointers (one per 4 KiB, or per 2 MiB). */
static size_t items_of(const struct variant *v, double mib) {
  if (v->layout == PER_HUGE || v->layout == DATA_HUGE)
    return (size_t)(mib / 2);
  return (size_t)(mib * (1 << 20) / PAGE);
}

static void usage(void) {
  fprintf(stderr, "usage: itlb VARIANT REPS MIB...\n  VARIANT:");
  for (size_t i = 0; i < NVARIANTS; i++)
    fprintf(stderr, " %s", VARIANTS[i].name);
  fprintf(stderr, "\n");
}

int main(int argc, char **argv) {
  if (argc < 4) {
    usage();
    return 2;
  }
  size_t vi = 0;
  while (vi < NVARIANTS && strcmp(argv[1], VARIANTS[vi].name)) vi++;
  if (vi == NVARIANTS) {
    fprintf(stderr, "itlb: unknown variant %s\n", argv[1]);
    usage();
    return 2;
  }
  const struct variant *v = &VARIANTS[vi];
#if !defined(__x86_64__)
  if (v->after == CPUID || v->after == LOOP) {
    fprintf(stderr, "itlb: variant %s is x86-64 only\n", argv[1]);
    return 2;
  }
#endif
  int reps = atoi(argv[2]);
  if (reps < 2 || reps % 2) {
    fprintf(stderr, "itlb: REPS must be even and >= 2\n");
    return 2;
  }
  double target_ns = 20e6;
  const char *ms = getenv("ITLB_SAMPLE_MS");
  if (ms && *ms) {
    target_ns = strtod(ms, NULL) * 1e6;
    if (!(target_ns > 0)) {
      fprintf(stderr, "itlb: ITLB_SAMPLE_MS must be a positive number\n");
      return 2;
    }
  }
  if (v->after == READ4K && (zero_fd = open("/dev/zero", O_RDONLY)) < 0)
    die("open /dev/zero");
  pthread_t th;
  int threaded = v->thread != NULL;
  if (threaded && pthread_create(&th, NULL, v->thread, NULL))
    die("pthread_create");

  printf("{\"variant\":\"%s\",\"reps\":%d,\"sampleMs\":%g,\"sizes\":[",
         argv[1], reps, target_ns / 1e6);
  for (int a = 3; a < argc; a++) {
    double mib = strtod(argv[a], NULL); /* may be a fraction: 0.25 */
    size_t pages = items_of(v, mib);
    if (pages < 1) {
      fprintf(stderr, "itlb: size %s MiB holds no item of %s (hop: 2 MiB "
                      "each, others: 4 KiB)\n", argv[a], argv[1]);
      return 2;
    }
    uint16_t *line_of = malloc(pages * sizeof *line_of);
    uint32_t *order = malloc(pages * sizeof *order);
    if (!line_of || !order) die("malloc");
    for (size_t i = 0; i < pages; i++) {
      line_of[i] = (uint16_t)(rng() % (PAGE / LINE));
      order[i] = (uint32_t)i;
    }
    for (size_t i = pages - 1; i > 0; i--) { /* Fisher-Yates */
      size_t k = rng() % (i + 1);
      uint32_t t = order[i];
      order[i] = order[k];
      order[k] = t;
    }
    struct region rh, rs;
    enum layout l = v->layout;
    make_region(&rh, l, pages, 1, line_of, order);
    make_region(&rs, l, pages, v->split, line_of, order);
    if (v->split) split_region(&rs);
    partner_pages = pages;
    /* Warm-up: a pass over each region, faulting nothing (all written),
     * then iterations per sample: about target_ns at the 4 KiB-page
     * region's speed, and every item at least twice (for ping-pong, at
     * least 500 iterations instead). */
    run(v, &rh, order, pages, pages);
    int futex = v->after == FUTEX;
    size_t probe = futex ? 200 : pages > 20000 ? pages : 20000;
    double per = run(v, &rs, order, pages, probe) / probe;
    size_t calls = (size_t)(target_ns / per);
    size_t least = futex ? 500 : v->all ? 2 : pages * 2;
    if (calls < least) calls = least;
    printf("%s{\"mib\":%g,\"pages\":%zu,\"calls\":%zu,\"mappedBytes\":%zu,"
           "\"hugeAnonHugeKiB\":%ld,\"smallAnonHugeKiB\":%ld,",
           a > 3 ? "," : "", mib, pages, calls, rh.len, rh.anon_huge_kib,
           rs.anon_huge_kib);
    if (v->split)
      printf("\"smallSplitFromKiB\":%ld,\"smallSplitSameFrame\":%s,",
             rs.split_from_kib,
             rs.split_same_frame < 0 ? "null"
             : rs.split_same_frame ? "true" : "false");
    printf("\"samples\":[");
    for (int r = 0; r < reps; r++) {
      /* ABBA: huge first in even reps, small first in odd ones; each timed
       * run follows an untimed quarter run in the same mode. */
      double th_ns = 0, ts_ns = 0;
      for (int s = 0; s < 2; s++) {
        int huge = (s == 0) == (r % 2 == 0);
        struct region *g = huge ? &rh : &rs;
        run(v, g, order, pages, calls / 4 > 0 ? calls / 4 : 1);
        double t = run(v, g, order, pages, calls);
        if (huge) th_ns = t;
        else ts_ns = t;
      }
      printf("%s{\"hugeNs\":%.3f,\"smallNs\":%.3f,\"hugeFirst\":%s}",
             r ? "," : "", th_ns / calls, ts_ns / calls,
             r % 2 == 0 ? "true" : "false");
    }
    printf("],\"hugeAnonHugeKiBAfter\":%ld,\"smallAnonHugeKiBAfter\":%ld}",
           anon_huge_kib((uintptr_t)rh.base, (uintptr_t)rh.base + rh.len),
           anon_huge_kib((uintptr_t)rs.base, (uintptr_t)rs.base + rs.len));
    fflush(stdout);
    free_region(&rh);
    free_region(&rs);
    free(line_of);
    free(order);
  }
  printf("]}\n");
  if (threaded) {
    atomic_store(&stop, 1);
    atomic_store(&turn, 1);
    futex_wake(&turn);
    pthread_join(th, NULL);
  }
  return 0;
}
