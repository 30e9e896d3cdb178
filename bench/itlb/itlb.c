/*
 * The physical limit of 2 MiB code pages on this machine: calls to
 * functions spread one per 4 KiB page over N MiB of code, in random order,
 * with the code on 2 MiB pages and on 4 KiB pages (same bytes, same layout,
 * same call sequence), timed in paired, interleaved repetitions.
 *
 *   itlb VARIANT REPS MIB...      prints one JSON document on stdout
 *                                 (MIB may be a fraction, e.g. 0.0625)
 *
 * Variants (what happens once per call, besides the call itself):
 *   call       nothing: pure instruction fetch from the spread code
 *   syscall    one getppid() system call (a real kernel entry and exit)
 *   pingpong   a futex round trip with a second thread, which also calls a
 *              function of the spread code before it answers
 *   shootdown  nothing, while a second thread maps, touches and unmaps a
 *              page in a loop (each munmap sends a TLB shootdown to the
 *              CPU running the calls, when it runs on another one)
 *
 * Each code region is anonymous memory aligned to 2 MiB: the huge one is
 * given MADV_HUGEPAGE before it is written (and MADV_COLLAPSE if some of it
 * is still on 4 KiB pages), the small one MADV_NOHUGEPAGE; both are then
 * made read+exec. AnonHugePages of each region is read back from
 * /proc/self/smaps and reported, so the runner can check the page sizes.
 *
 * Every function sits at a different cache line of its page (random, the
 * same in both regions), so the functions do not all fall in the same
 * L1i/L2 set. x86-64 and arm64.
 */
#define _GNU_SOURCE
#include <errno.h>
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
#define TARGET_NS 20e6 /* one timed sample */

typedef unsigned (*fn_t)(unsigned);

struct region {
  uint8_t *base; /* 2 MiB aligned */
  size_t len;    /* mapped: the code's size rounded up to 2 MiB */
  fn_t *fns; /* fns[i]: the function on page i */
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

static void make_region(struct region *r, size_t pages, int huge,
                        const uint16_t *line_of) {
  /* A region under 2 MiB gets a 2 MiB mapping (a THP needs a whole aligned
   * 2 MiB in the VMA), of which only the first pages hold functions. */
  r->len = (pages * PAGE + HUGE - 1) & ~(HUGE - 1);
  uint8_t *raw = mmap(NULL, r->len + HUGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) die("mmap");
  uint8_t *base = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
  if (base > raw) munmap(raw, base - raw);
  munmap(base + r->len, raw + r->len + HUGE - (base + r->len));
  if (madvise(base, r->len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
    die("madvise(MADV_HUGEPAGE/NOHUGEPAGE)");
  memset(base, 0xcc, r->len); /* int3 (x86) everywhere else */
  r->fns = malloc(pages * sizeof *r->fns);
  if (!r->fns) die("malloc");
  for (size_t i = 0; i < pages; i++) {
    uint8_t *p = base + i * PAGE + line_of[i] * LINE;
    emit(p, (uint32_t)(i & 0xfff));
    r->fns[i] = (fn_t)(void *)p;
  }
  __builtin___clear_cache((char *)base, (char *)base + r->len);
  if (mprotect(base, r->len, PROT_READ | PROT_EXEC) != 0) die("mprotect");
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
  free(r->fns);
}

/* ---------------------------------------------------------- variants */

enum variant { CALL, SYSCALL, PINGPONG, SHOOTDOWN };

static _Atomic int turn; /* pingpong: 1 = partner's turn, 0 = main's */
static _Atomic int stop;
static fn_t *volatile partner_fns;
static size_t partner_pages;
static volatile unsigned sink;

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
    fn_t *fns = partner_fns;
    acc += fns[(k * 7919) % partner_pages](acc);
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

/* Runs `calls` calls of fns in the order `order` (cycled); returns ns. */
static double run(enum variant v, fn_t *fns, const uint32_t *order,
                  size_t pages, size_t calls) {
  unsigned acc = 0;
  size_t j = 0;
  partner_fns = fns;
  double t0 = now_ns();
  for (size_t i = 0; i < calls; i++) {
    acc += fns[order[j]](acc);
    if (++j == pages) j = 0;
    if (v == SYSCALL) {
      acc += (unsigned)syscall(SYS_getppid);
    } else if (v == PINGPONG) {
      atomic_store(&turn, 1);
      futex_wake(&turn);
      while (atomic_load(&turn) != 0) futex_wait(&turn, 1);
    }
  }
  double t = now_ns() - t0;
  sink = acc;
  return t;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: itlb call|syscall|pingpong|shootdown REPS MIB...\n");
    return 2;
  }
  enum variant v;
  if (!strcmp(argv[1], "call")) v = CALL;
  else if (!strcmp(argv[1], "syscall")) v = SYSCALL;
  else if (!strcmp(argv[1], "pingpong")) v = PINGPONG;
  else if (!strcmp(argv[1], "shootdown")) v = SHOOTDOWN;
  else {
    fprintf(stderr, "itlb: unknown variant %s\n", argv[1]);
    return 2;
  }
  int reps = atoi(argv[2]);
  if (reps < 2 || reps % 2) {
    fprintf(stderr, "itlb: REPS must be even and >= 2\n");
    return 2;
  }
  pthread_t th;
  int threaded = v == PINGPONG || v == SHOOTDOWN;
  if (threaded &&
      pthread_create(&th, NULL, v == PINGPONG ? partner : unmapper, NULL))
    die("pthread_create");

  printf("{\"variant\":\"%s\",\"reps\":%d,\"sizes\":[", argv[1], reps);
  for (int a = 3; a < argc; a++) {
    double mib = strtod(argv[a], NULL); /* may be a fraction: 0.25 */
    size_t pages = (size_t)(mib * (1 << 20) / PAGE);
    if (pages < 1) {
      fprintf(stderr, "itlb: size %s MiB is less than one page\n", argv[a]);
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
    make_region(&rh, pages, 1, line_of);
    make_region(&rs, pages, 0, line_of);
    partner_pages = pages;
    /* Warm-up: a pass over each region, faulting nothing (all written),
     * then calls per sample: about TARGET_NS of the 4 KiB-page region's
     * speed, and every page at least twice (for ping-pong, at least 500
     * calls instead). */
    run(v, rh.fns, order, pages, pages);
    size_t probe = v == PINGPONG ? 200 : pages > 20000 ? pages : 20000;
    double per = run(v, rs.fns, order, pages, probe) / probe;
    size_t calls = (size_t)(TARGET_NS / per);
    size_t least = v == PINGPONG ? 500 : pages * 2;
    if (calls < least) calls = least;
    printf("%s{\"mib\":%g,\"pages\":%zu,\"calls\":%zu,"
           "\"hugeAnonHugeKiB\":%ld,\"smallAnonHugeKiB\":%ld,\"samples\":[",
           a > 3 ? "," : "", mib, pages, calls, rh.anon_huge_kib,
           rs.anon_huge_kib);
    for (int r = 0; r < reps; r++) {
      /* ABBA: huge first in even reps, small first in odd ones; each timed
       * run follows an untimed quarter run in the same mode. */
      double th_ns = 0, ts_ns = 0;
      for (int s = 0; s < 2; s++) {
        int huge = (s == 0) == (r % 2 == 0);
        struct region *g = huge ? &rh : &rs;
        run(v, g->fns, order, pages, calls / 4 > 0 ? calls / 4 : 1);
        double t = run(v, g->fns, order, pages, calls);
        if (huge) th_ns = t;
        else ts_ns = t;
      }
      printf("%s{\"hugeNs\":%.1f,\"smallNs\":%.1f,\"hugeFirst\":%s}",
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
