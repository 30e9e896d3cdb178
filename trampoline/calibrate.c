// SPDX-License-Identifier: MIT
/*
 * page-primer calibration driver: the native part of src/tools/calibrate.ts,
 * which measures in this process whether code on 2 MiB pages runs faster
 * than the same code on 4 KiB pages.
 *
 * The caller supplies the machine code (one small function per 4 KiB page,
 * built per architecture in TypeScript) as an image; this file maps it and
 * calls it. No libc, no allocation, every syscall checked. One request
 * (struct pp_calibrate in primer.h) per call:
 *
 *   PP_CAL_MAP    an anonymous RW area aligned to 2 MiB (one VMA) ->
 *                 MADV_HUGEPAGE or MADV_NOHUGEPAGE -> the image copied in
 *                 -> MADV_COLLAPSE (2 MiB only, best effort, errno kept) ->
 *                 mprotect read+exec (never writable and executable at once)
 *                 -> instruction cache sync. Any failure unmaps the area.
 *   PP_CAL_RUN    `calls` calls x = f(x), f = start + table[k], k cycling
 *                 through the table; with PP_CAL_F_SYSCALL one gettid()
 *                 system call after each. x is the last return value,
 *                 cpu_ns the thread's CPU time over the calls.
 *   PP_CAL_UNMAP  munmap of an area PP_CAL_MAP returned.
 */
#include <stdint.h>
#include "linux_abi.h"
#include "primer.h"

#if defined(__x86_64__)
#include "arch_x86_64.h"
#elif defined(__aarch64__)
#include "arch_aarch64.h"
#else
#error "page-primer trampoline: x86_64 and aarch64 only"
#endif

#define EINVAL 22
#define CLOCK_THREAD_CPUTIME_ID 3

struct pp_timespec {
	long sec;
	long nsec;
};

typedef uint64_t (*pp_cal_fn)(uint64_t);

static int is_err(long r) { return r < 0 && r > -4096; }

static long fail(struct pp_calibrate *q, enum pp_cal_step step, long ret)
{
	q->step = step;
	q->err = (uint64_t)-ret;
	return -1;
}

static int check_map(const struct pp_calibrate *q)
{
	return q->len != 0 && q->len % HUGE_SIZE == 0 &&
	       q->image_len <= q->len && q->image != 0;
}

/* Every table entry names a byte inside the area. */
static int check_run(const struct pp_calibrate *q)
{
	const uint32_t *t = (const uint32_t *)(uintptr_t)q->table;

	if (q->start == 0 || q->start % HUGE_SIZE || q->len == 0 ||
	    q->table == 0 || q->table_len == 0)
		return 0;
	for (uint64_t k = 0; k < q->table_len; k++)
		if (t[k] >= q->len)
			return 0;
	return 1;
}

/* q->len bytes of RW anonymous memory aligned to 2 MiB, as one VMA. */
static long area_alloc(struct pp_calibrate *q, uint64_t *out)
{
	uint64_t span = q->len + HUGE_SIZE;
	long m = pp_syscall6(PP_SYS_MMAP, 0, (long)span, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t base, start, head, tail;
	long r;

	if (is_err(m))
		return fail(q, PP_CAL_STEP_MAP, m);
	base = (uint64_t)m;
	start = (base + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
	head = start - base;
	tail = span - head - q->len;
	r = head ? pp_syscall6(PP_SYS_MUNMAP, (long)base, (long)head, 0, 0, 0, 0)
		 : 0;
	if (!is_err(r) && tail)
		r = pp_syscall6(PP_SYS_MUNMAP, (long)(start + q->len),
				(long)tail, 0, 0, 0, 0);
	if (is_err(r)) {
		pp_syscall6(PP_SYS_MUNMAP, (long)base, (long)span, 0, 0, 0, 0);
		return fail(q, PP_CAL_STEP_TRIM, r);
	}
	*out = start;
	return 0;
}

/* Advice, the image, the collapse and the final protection. */
static long area_fill(struct pp_calibrate *q, uint64_t start)
{
	int huge = (q->flags & PP_CAL_F_HUGE) != 0;
	long r = pp_syscall6(PP_SYS_MADVISE, (long)start, (long)q->len,
			     huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE, 0, 0, 0);

	if (is_err(r))
		return fail(q, PP_CAL_STEP_ADVISE, r);
	pp_copy((void *)(uintptr_t)start, (const void *)(uintptr_t)q->image,
		q->image_len);
	if (huge) {
		r = pp_syscall6(PP_SYS_MADVISE, (long)start, (long)q->len,
				MADV_COLLAPSE, 0, 0, 0);
		q->collapse_err = is_err(r) ? (uint64_t)-r : 0;
	}
	r = pp_syscall6(PP_SYS_MPROTECT, (long)start, (long)q->len,
			PROT_READ | PROT_EXEC, 0, 0, 0);
	if (is_err(r))
		return fail(q, PP_CAL_STEP_PROTECT, r);
	pp_sync_icache(start, q->len);
	return 0;
}

static long do_map(struct pp_calibrate *q)
{
	uint64_t start = 0;

	if (!check_map(q))
		return fail(q, PP_CAL_STEP_CHECK, -EINVAL);
	if (area_alloc(q, &start) < 0)
		return -1;
	if (area_fill(q, start) < 0) {
		pp_syscall6(PP_SYS_MUNMAP, (long)start, (long)q->len, 0, 0, 0, 0);
		return -1;
	}
	q->start = start;
	return 0;
}

static uint64_t calls_only(const struct pp_calibrate *q)
{
	const uint32_t *t = (const uint32_t *)(uintptr_t)q->table;
	uint64_t x = q->x, k = 0;

	for (uint64_t c = 0; c < q->calls; c++) {
		x = ((pp_cal_fn)(uintptr_t)(q->start + t[k]))(x);
		if (++k == q->table_len)
			k = 0;
	}
	return x;
}

static uint64_t calls_and_syscalls(const struct pp_calibrate *q)
{
	const uint32_t *t = (const uint32_t *)(uintptr_t)q->table;
	uint64_t x = q->x, k = 0;

	for (uint64_t c = 0; c < q->calls; c++) {
		x = ((pp_cal_fn)(uintptr_t)(q->start + t[k]))(x);
		pp_syscall6(PP_SYS_GETTID, 0, 0, 0, 0, 0, 0);
		if (++k == q->table_len)
			k = 0;
	}
	return x;
}

/* This thread's CPU time in ns, or 0 when the clock cannot be read (or
 * the arch header has no PP_SYS_CLOCK_GETTIME: x86_64 228, aarch64 113;
 * the caller then times the call itself). */
static uint64_t thread_ns(void)
{
#ifndef PP_SYS_CLOCK_GETTIME
	return 0;
#else
	struct pp_timespec ts;
	long r = pp_syscall6(PP_SYS_CLOCK_GETTIME, CLOCK_THREAD_CPUTIME_ID,
			     (long)&ts, 0, 0, 0, 0);

	if (is_err(r))
		return 0;
	return (uint64_t)ts.sec * 1000000000UL + (uint64_t)ts.nsec;
#endif
}

/* The calls, timed in this thread's CPU time (time while the thread
 * waits for a CPU does not count). */
static long do_run(struct pp_calibrate *q)
{
	uint64_t t0, t1;

	if (!check_run(q))
		return fail(q, PP_CAL_STEP_CHECK, -EINVAL);
	t0 = thread_ns();
	q->x = (q->flags & PP_CAL_F_SYSCALL) ? calls_and_syscalls(q)
					      : calls_only(q);
	t1 = thread_ns();
	q->cpu_ns = t0 && t1 > t0 ? t1 - t0 : 0;
	return 0;
}

static long do_unmap(struct pp_calibrate *q)
{
	long r;

	if (q->start == 0 || q->start % HUGE_SIZE || q->len == 0 ||
	    q->len % HUGE_SIZE)
		return fail(q, PP_CAL_STEP_CHECK, -EINVAL);
	r = pp_syscall6(PP_SYS_MUNMAP, (long)q->start, (long)q->len, 0, 0, 0,
			0);
	if (is_err(r))
		return fail(q, PP_CAL_STEP_UNMAP, r);
	return 0;
}

/* One request; returns 0, or 1 when it failed (step and err say where). */
__attribute__((visibility("default"))) uint64_t
pp_calibrate(struct pp_calibrate *q)
{
	long r;

	q->step = PP_CAL_OK;
	q->err = 0;
	if (q->op == PP_CAL_MAP)
		r = do_map(q);
	else if (q->op == PP_CAL_RUN)
		r = do_run(q);
	else if (q->op == PP_CAL_UNMAP)
		r = do_unmap(q);
	else
		r = fail(q, PP_CAL_STEP_CHECK, -EINVAL);
	return r < 0 ? 1 : 0;
}
