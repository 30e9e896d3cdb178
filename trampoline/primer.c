// SPDX-License-Identifier: MIT
/*
 * page-primer trampoline: executes a prepared plan of region swaps, each
 * region replaced by an identical copy in one syscall. No libc (libc may be
 * among the objects being remapped), no allocation, every syscall checked.
 * The steps and their failure semantics: trampoline/README.md.
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
#include "registry.h"

static int is_err(long r) { return r < 0 && r > -4096; }

/* Every syscall of a record, counted; for tests, number fault_at (1-based)
 * fails with fault_errno without being made (trampoline/README.md). */
static long sys(struct pp_region *r, long nr, long a1, long a2, long a3,
		long a4, long a5, long a6)
{
	r->calls++;
	if (r->fault_at && r->calls == r->fault_at)
		return -(long)r->fault_errno;
	return pp_syscall6(nr, a1, a2, a3, a4, a5, a6);
}

static long fail(struct pp_region *r, enum pp_step step, long ret)
{
	r->step = step;
	r->err = (uint64_t)-ret;
	return -1;
}

static int check_region(struct pp_region *r)
{
	uint64_t data_end = r->data_start + r->data_len;

	if (r->len == 0 || r->start % HUGE_SIZE || r->len % HUGE_SIZE)
		return 0;
	if (r->data_start < r->start || data_end > r->start + r->len ||
	    data_end < r->data_start || r->data_start % 4096 || r->data_len % 4096)
		return 0;
	if ((r->prot & PROT_WRITE) && (r->prot & PROT_EXEC))
		return 0;
	if ((r->flags & PP_F_DIFFERS_FROM_FILE) &&
	    (r->flags & (PP_F_FROM_FILE | PP_F_SHARED)))
		return 0; /* file bytes must never stand in for memory */
	if (r->op == PP_OP_RESTORE && (r->flags & PP_F_DIFFERS_FROM_FILE) &&
	    (!(r->flags & PP_F_4K) || (r->flags & (PP_F_HUGETLB | PP_F_MEMFD))))
		return 0; /* a restore by copy is a plain 4 KiB one */
	return 1;
}

/* An anonymous RW area of r->len bytes aligned to 2 MiB, as one VMA. */
static long stage_alloc(struct pp_region *r, uint64_t *out)
{
	uint64_t span = r->len + HUGE_SIZE;
	uint64_t base, head, tail;
	long p, ret;

	if (r->flags & PP_F_HUGETLB) { /* reserved now; 2 MiB aligned */
		p = sys(r, PP_SYS_MMAP, 0, r->len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
					MAP_HUGE_2MB, -1, 0);
		if (is_err(p))
			return fail(r, PP_STEP_STAGE, p);
		*out = (uint64_t)p;
		return 0;
	}
	p = sys(r, PP_SYS_MMAP, 0, span, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (is_err(p))
		return fail(r, PP_STEP_STAGE, p);
	base = ((uint64_t)p + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
	if (r->flags & PP_F_MEMFD) { /* the memfd replaces the aligned middle */
		/* A shared copy other processes map too is never writable here. */
		long prot = (r->flags & PP_F_SHARED) ? PROT_READ
						      : PROT_READ | PROT_WRITE;

		ret = sys(r, PP_SYS_MMAP, base, r->len, prot,
				  MAP_SHARED | MAP_FIXED, (long)r->stage_fd, 0);
		if (is_err(ret)) {
			sys(r, PP_SYS_MUNMAP, p, span, 0, 0, 0, 0);
			return fail(r, PP_STEP_STAGE, ret);
		}
	}
	head = base - (uint64_t)p;
	tail = span - head - r->len;
	if (head) {
		ret = sys(r, PP_SYS_MUNMAP, p, head, 0, 0, 0, 0);
		if (is_err(ret)) {
			sys(r, PP_SYS_MUNMAP, p, span, 0, 0, 0, 0);
			return fail(r, PP_STEP_TRIM, ret);
		}
	}
	if (tail) {
		ret = sys(r, PP_SYS_MUNMAP, base + r->len, tail, 0, 0, 0, 0);
		if (is_err(ret)) {
			sys(r, PP_SYS_MUNMAP, base, r->len + tail, 0, 0, 0, 0);
			return fail(r, PP_STEP_TRIM, ret);
		}
	}
	*out = base;
	return 0;
}

static long stage_advise(struct pp_region *r, uint64_t stage)
{
	long advice = (r->flags & PP_F_4K) ? MADV_NOHUGEPAGE : MADV_HUGEPAGE;
	long ret;

	if (r->flags & PP_F_HUGETLB)
		return 0;
	ret = sys(r, PP_SYS_MADVISE, stage, r->len, advice, 0, 0, 0);

	return is_err(ret) ? fail(r, PP_STEP_ADVISE, ret) : 0;
}

/*
 * The fill, one 2 MiB piece of the stage at a time: the piece's pages are
 * allocated (MADV_POPULATE_WRITE), then its part of the original bytes is
 * copied in, while the page just cleared is still in the cache (populating
 * the whole stage first clears it in one pass and copies in a second, which
 * misses the cache twice: 2 ms of 26 ms for Deno's 92 MiB). Populating
 * first keeps every failure an errno: a short hugetlb pool or a hugetlb
 * cgroup limit would otherwise be a SIGBUS in the copy, and a memory cgroup
 * with nothing to kill would leave the copy's page fault retrying forever.
 * EINVAL: a kernel before 5.14 (no MADV_POPULATE_*); the pages are then
 * faulted by the copy. A shared copy was filled by the caller.
 */
struct piece {
	uint64_t dst; /* where in the stage */
	uint64_t src; /* the same bytes in the original mapping */
	uint64_t off; /* and in the file */
	uint64_t len;
};

static long piece_populate(struct pp_region *r, uint64_t at, int *old_kernel)
{
	long ret;

	if (*old_kernel)
		return 0;
	ret = sys(r, PP_SYS_MADVISE, at, HUGE_SIZE, MADV_POPULATE_WRITE, 0, 0,
		  0);
	if (ret == -22) {
		*old_kernel = 1;
		return 0;
	}
	return is_err(ret) ? fail(r, PP_STEP_POPULATE, ret) : 0;
}

/* From the page cache with pread when the caller knows the mapping holds
 * no private (COW) page, i.e. equals the file: no source page faults. */
static long piece_from_file(struct pp_region *r, const struct piece *p)
{
	uint64_t done = 0;
	long ret;

	while (done < p->len) {
		ret = sys(r, PP_SYS_PREAD64, (long)r->fd, p->dst + done,
			  p->len - done, p->off + done, 0, 0);
		if (ret == -4) /* EINTR */
			continue;
		if (is_err(ret))
			return fail(r, PP_STEP_FILL, ret);
		if (ret == 0)
			return fail(r, PP_STEP_FILL, -5); /* EIO: file too short */
		done += (uint64_t)ret;
	}
	return 0;
}

/* From memory: the source mapped in one call (much cheaper than a page
 * fault every few KiB; EINVAL before Linux 5.14), then copied. */
static long piece_from_memory(struct pp_region *r, const struct piece *p,
			      int *old_kernel)
{
	long ret = *old_kernel ? 0
		   : sys(r, PP_SYS_MADVISE, p->src, p->len, MADV_POPULATE_READ,
			 0, 0, 0);

	if (is_err(ret) && ret != -22)
		return fail(r, PP_STEP_FILL, ret);
	pp_copy((void *)p->dst, (const void *)p->src, p->len);
	return 0;
}

/* The part of the original bytes that falls in the stage's piece at `at`
 * (the head and tail the range grew into hold none). */
static struct piece piece_at(const struct pp_region *r, uint64_t stage,
			     uint64_t at)
{
	uint64_t head = r->data_start - r->start;
	uint64_t lo = at > head ? at : head;
	uint64_t end = at + HUGE_SIZE, data_end = head + r->data_len;
	uint64_t hi = end < data_end ? end : data_end;
	struct piece p = { stage + lo, r->data_start + (lo - head),
			   r->file_off + (lo - head), hi > lo ? hi - lo : 0 };

	return p;
}

static long stage_fill(struct pp_region *r, uint64_t stage)
{
	int old_kernel = 0;
	uint64_t at;

	if (r->flags & PP_F_SHARED)
		return 0;
	for (at = 0; at < r->len; at += HUGE_SIZE) {
		struct piece p = piece_at(r, stage, at);

		if (piece_populate(r, stage + at, &old_kernel))
			return -1;
		if (p.len == 0)
			continue;
		if ((r->flags & PP_F_FROM_FILE) ? piece_from_file(r, &p)
						: piece_from_memory(r, &p, &old_kernel))
			return -1;
	}
	return 0;
}

/* Best effort: huge pages the fill did not get, and a name in maps. */
static void stage_finish(struct pp_region *r, uint64_t stage)
{
	long ret;

	if (!(r->flags & (PP_F_4K | PP_F_HUGETLB))) {
		ret = sys(r, PP_SYS_MADVISE, stage, r->len, MADV_COLLAPSE,
				  0, 0, 0);
		r->collapse_err = is_err(ret) ? (uint64_t)-ret : 0;
	}
	if (r->name) {
		ret = sys(r, PP_SYS_PRCTL, PR_SET_VMA, PR_SET_VMA_ANON_NAME,
				  stage, r->len, r->name, 0);
		r->name_err = is_err(ret) ? (uint64_t)-ret : 0;
	}
	pp_sync_icache(stage, r->len);
}

static long stage_protect(struct pp_region *r, uint64_t stage)
{
	long ret = sys(r, PP_SYS_MPROTECT, stage, r->len, r->prot, 0, 0, 0);

	return is_err(ret) ? fail(r, PP_STEP_PROTECT, ret) : 0;
}

/* Maps the file back over [data_start, +data_len): one syscall. */
static long map_file(struct pp_region *r)
{
	return sys(r, PP_SYS_MMAP, r->data_start, r->data_len, r->prot,
			   MAP_PRIVATE | MAP_FIXED, (long)r->fd, r->file_off);
}

/* Fills [data_start, +data_len) again from the stage: anonymous RW, copy,
 * then the final protection (never writable and executable at once). */
static long copy_back(struct pp_region *r, uint64_t stage)
{
	long ret = sys(r, PP_SYS_MMAP, r->data_start, r->data_len,
		       PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	if (is_err(ret))
		return ret;
	pp_copy((void *)r->data_start,
		(const void *)(stage + (r->data_start - r->start)), r->data_len);
	pp_sync_icache(r->data_start, r->data_len);
	return sys(r, PP_SYS_MPROTECT, r->data_start, r->data_len, r->prot, 0,
		   0, 0);
}

/* mremap may have unmapped the destination before failing: put the bytes
 * back so no hole is left, from the file only where memory equals it. */
static void recover(struct pp_region *r, uint64_t stage)
{
	long ret;

	if (r->flags & PP_F_DIFFERS_FROM_FILE)
		ret = copy_back(r, stage);
	else if ((long)r->fd >= 0)
		ret = map_file(r);
	else
		return;
	if (!is_err(ret))
		r->recovered = 1;
}

static long swap(struct pp_region *r, uint64_t stage)
{
	long ret = sys(r, PP_SYS_MREMAP, stage, r->len, r->len,
			       MREMAP_MAYMOVE | MREMAP_FIXED, r->start, 0);

	if (!is_err(ret))
		return 0;
	recover(r, stage);
	sys(r, PP_SYS_MUNMAP, stage, r->len, 0, 0, 0, 0);
	return fail(r, PP_STEP_SWAP, ret);
}

static long do_swap(struct pp_region *r)
{
	uint64_t stage = 0;

	if (stage_alloc(r, &stage))
		return -1;
	r->stage = stage;
	if (stage_advise(r, stage) == 0 && stage_fill(r, stage) == 0) {
		stage_finish(r, stage);
		if (stage_protect(r, stage) == 0)
			return swap(r, stage);
	}
	sys(r, PP_SYS_MUNMAP, stage, r->len, 0, 0, 0, 0);
	return -1;
}

static long do_restore(struct pp_region *r)
{
	uint64_t data_end = r->data_start + r->data_len;
	uint64_t end = r->start + r->len;
	long ret;

	/* Bytes that differ from the file go back on 4 KiB pages, copied
	 * from the copy in one swap. A hugetlb VMA splits only at 2 MiB:
	 * replace it whole with the file (the caller made sure the offset
	 * below is not negative). */
	if (r->flags & PP_F_DIFFERS_FROM_FILE)
		ret = do_swap(r);
	else if (r->flags & PP_F_HUGETLB)
		ret = sys(r, PP_SYS_MMAP, r->start, r->len, r->prot,
				  MAP_PRIVATE | MAP_FIXED, (long)r->fd,
				  r->file_off - (r->data_start - r->start));
	else
		ret = map_file(r);
	if (is_err(ret))
		return r->step ? ret : fail(r, PP_STEP_RESTORE, ret);
	/* The parts outside the file were our own extension: release them. */
	if (r->data_start > r->start) {
		ret = sys(r, PP_SYS_MUNMAP, r->start,
				  r->data_start - r->start, 0, 0, 0, 0);
		if (is_err(ret))
			return fail(r, PP_STEP_UNMAP_EXTENSION, ret);
	}
	if (end > data_end) {
		ret = sys(r, PP_SYS_MUNMAP, data_end, end - data_end, 0, 0,
				  0, 0);
		if (is_err(ret))
			return fail(r, PP_STEP_UNMAP_EXTENSION, ret);
	}
	return 0;
}

__attribute__((visibility("default"))) uint64_t pp_abi(void)
{
	return PP_ABI_VERSION;
}

/* Runs `count` records in order; returns how many failed. */
__attribute__((visibility("default"))) uint64_t pp_run(struct pp_region *regions,
						       uint64_t count)
{
	uint64_t failed = 0;

	for (uint64_t i = 0; i < count; i++) {
		struct pp_region *r = &regions[i];
		long ret;

		r->step = PP_OK;
		r->err = r->collapse_err = r->name_err = r->recovered = 0;
		r->stage = 0;
		r->calls = 0;
		if (!check_region(r)) {
			r->step = PP_STEP_CHECK;
			r->err = 22; /* EINVAL */
			failed++;
			continue;
		}
		if (r->op == PP_OP_SWAP)
			ret = do_swap(r);
		else if (r->op == PP_OP_RESTORE)
			ret = do_restore(r);
		else
			ret = fail(r, PP_STEP_CHECK, -22);
		if (ret)
			failed++;
	}
	return failed;
}
