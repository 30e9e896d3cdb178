// SPDX-License-Identifier: MIT
/*
 * page-primer perf map writer: the per-symbol work of src/remap/perf_map.ts.
 *
 * The caller decides what to name (which object, which ranges, the load
 * bias, that the file is the one loaded) and lends the scratch buffers;
 * this file reads the symbol table and its names from the file with pread,
 * keeps the functions inside the ranges, picks one name per address and
 * appends `START SIZE name\n` lines (hex without 0x) to the map. No libc, no
 * allocation, every syscall checked. Two calls per object
 * (struct pp_perf_map in primer.h), the state between them in the caller's
 * buffers:
 *
 *   PP_PM_COLLECT  read_symbols -> sort_by_address -> mark_shared
 *   PP_PM_WRITE    order_by_name -> visit_names (lone candidates
 *                  written, shared ones' names pooled) -> write_chosen
 *                  -> flush
 *
 * A name is chosen among several at one address (aliases) as
 * perfMapEntries() in src/remap/perf_map.ts does: an unversioned name over
 * `name@VER`, then global over weak over local, then the larger st_size,
 * the shorter name, the first in byte order.
 */
#include <stdint.h>
#include "primer.h"

#if defined(__x86_64__)
#include "arch_x86_64.h"
#elif defined(__aarch64__)
#include "arch_aarch64.h"
#else
#error "page-primer trampoline: x86_64 and aarch64 only"
#endif

#define SYM_SIZE 24       /* sizeof(Elf64_Sym) */
#define STT_FUNC 2
#define STT_GNU_IFUNC 10
#define STB_LOCAL 0
#define STB_GLOBAL 1
#define STB_WEAK 2
#define SLACK 4096        /* io bytes past a chunk, for names that cross it */
#define MIN_IO (64 * 1024)
#define MIN_OUT 4096
#define RADIX_BITS 11
#define LINE_HEAD 34      /* two hex numbers of up to 16 digits, 2 spaces */
#define PREFETCH 16       /* candidates asked for ahead of use */
#define EINTR 4
#define EIO 5
#define EINVAL 22
#define ENOSPC 28
#define EOVERFLOW 75

#define PM_SHARED 1       /* its address has other candidates */
#define PM_NAMELESS 2     /* its name is empty: no line */
#define PM_VERSIONED 4    /* its name holds '@' (name@VER) */
#define PM_CRLF 8         /* its name holds CR or LF */

/* One function, clipped to one range; 5 words (the caller sizes it so). */
struct pp_pm_cand {
	uint64_t start;    /* runtime address of the part inside the range */
	uint64_t size;     /* bytes of that part */
	uint64_t sym_size; /* st_size: the larger alias wins */
	uint64_t pool;     /* shared: length << 32 | place in the pool + 1 */
	uint32_t name;     /* st_name */
	uint8_t bind;
	uint8_t flags;     /* PM_* */
	uint16_t unused;
};
_Static_assert(sizeof(struct pp_pm_cand) == 8 * PP_PM_CAND_WORDS,
	       "struct pp_pm_cand is PP_PM_CAND_WORDS words");

/* One call's view of the request. */
struct pm {
	struct pp_perf_map *q;
	struct pp_pm_range *ranges;
	struct pp_pm_cand *cand;
	uint64_t *order;      /* by address: key << idx_bits | index */
	uint64_t *by_name;    /* indices, grouped by string table chunk */
	unsigned idx_bits;
	uint8_t *io;          /* the window: string table bytes [win_at, +win_len) */
	uint64_t win_at, win_len, win_whole; /* win_whole: up to its last NUL */
	uint8_t *out;
	uint64_t out_used;
	uint8_t *pool;
	uint64_t pool_used;
};

static int is_err(long r) { return r < 0 && r > -4096; }

/* Records the failed step and its errno; -1. */
static long fail(struct pm *m, enum pp_pm_step step, long err)
{
	m->q->step = step;
	m->q->err = (uint64_t)err;
	return -1;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Bits needed to write v (0 for 0). */
static unsigned bits_of(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

typedef uint64_t unaligned_u64 __attribute__((aligned(1), may_alias));
typedef uint32_t unaligned_u32 __attribute__((aligned(1), may_alias));

/* Fields of a symbol: x86_64 is little-endian, as the files it loads. */
static uint64_t le64(const uint8_t *p) { return *(const unaligned_u64 *)p; }
static uint32_t le32(const uint8_t *p) { return *(const unaligned_u32 *)p; }

// ---------------------------------------------------------------------------
// Syscalls.

/* Reads exactly len bytes at off; a file shorter than that is EIO. */
static long pread_full(struct pm *m, enum pp_pm_step step, void *buf,
		       uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		long ret = pp_syscall6(PP_SYS_PREAD64, (long)m->q->file_fd,
				       (long)buf + done, len - done, off + done,
				       0, 0);

		if (ret == -EINTR)
			continue;
		if (is_err(ret))
			return fail(m, step, -ret);
		if (ret == 0)
			return fail(m, step, EIO);
		done += (uint64_t)ret;
	}
	return 0;
}

/* Appends len bytes to the map (O_APPEND), all of them. */
static long write_all(struct pm *m, const uint8_t *buf, uint64_t len)
{
	while (len) {
		long ret = pp_syscall6(PP_SYS_WRITE, (long)m->q->map_fd,
				       (long)buf, len, 0, 0, 0);

		if (ret == -EINTR)
			continue;
		if (is_err(ret))
			return fail(m, PP_PM_STEP_WRITE, -ret);
		if (ret == 0)
			return fail(m, PP_PM_STEP_WRITE, EIO);
		buf += ret;
		len -= (uint64_t)ret;
		m->q->written += (uint64_t)ret;
	}
	return 0;
}

// ---------------------------------------------------------------------------
// Check: the request's sizes, before anything is read or written.

/* Ranges sorted, disjoint, not empty; each one's base is the bytes of the
 * ranges before it (the sort key is base + offset in the range). */
static int check_ranges(struct pm *m)
{
	uint64_t base = 0;

	for (uint64_t r = 0; r < m->q->range_count; r++) {
		struct pp_pm_range *g = &m->ranges[r];

		if (g->end <= g->start || (r && g->start < g[-1].end))
			return 0;
		g->base = base;
		base += g->end - g->start;
	}
	return 1;
}

/* Buffers present, aligned and large enough for the operation; sizes
 * that keep every offset and counter inside 64 (or 32) bits. */
static int check_request(struct pm *m)
{
	struct pp_perf_map *q = m->q;

	if (!q->ranges || !q->range_count || !q->io || q->io_len < MIN_IO ||
	    !q->cand || !q->order || !q->order_tmp || !q->cand_cap ||
	    q->cand_cap >= (1UL << 32) || q->str_size >= (1UL << 32) ||
	    (q->io | q->io_len | q->cand | q->order | q->order_tmp) % 8 ||
	    q->sym_count > (~0UL - q->sym_off) / SYM_SIZE)
		return 0;
	/* The name chunks' counters fit in io. */
	if (4 * (q->str_size / (q->io_len - SLACK) + 2) > q->io_len)
		return 0;
	if (q->op != PP_PM_COLLECT && q->op != PP_PM_WRITE &&
	    q->op != PP_PM_WRITE_SHARED)
		return 0;
	if (q->op != PP_PM_COLLECT &&
	    (!q->out || q->out_len < MIN_OUT || q->count > q->cand_cap ||
	     (q->pool_len && !q->pool) || q->pool_len >= (1UL << 32)))
		return 0;
	return q->op == PP_PM_COLLECT ? check_ranges(m) : 1;
}

// ---------------------------------------------------------------------------
// Collect, step 1: the functions of the symbol table inside the ranges.

/* value + bias, unless it wraps around (then the function is nowhere). */
static int biased(uint64_t value, uint64_t bias, uint64_t *at)
{
	*at = value + bias;
	return (int64_t)bias >= 0 ? *at >= value : *at < value;
}

/* The first range ending after lo. */
static uint64_t first_range(struct pm *m, uint64_t lo)
{
	uint64_t a = 0, b = m->q->range_count;

	while (a < b) {
		uint64_t mid = a + (b - a) / 2;

		if (m->ranges[mid].end <= lo)
			a = mid + 1;
		else
			b = mid;
	}
	return a;
}

/* The part of [lo, hi) inside range r, as candidate number q->count (kept
 * while there is room; counted anyway, for the caller to make room). */
static void add_candidate(struct pm *m, uint64_t r, uint64_t lo, uint64_t hi,
			  const uint8_t *sym)
{
	struct pp_pm_range *g = &m->ranges[r];
	uint64_t n = m->q->count++;
	uint64_t start = lo > g->start ? lo : g->start;
	struct pp_pm_cand *c = &m->cand[n];

	if (n >= m->q->cand_cap)
		return;
	c->start = start;
	c->size = (hi < g->end ? hi : g->end) - start;
	c->sym_size = le64(sym + 16);
	c->pool = 0;
	c->name = le32(sym);
	c->bind = sym[4] >> 4;
	c->flags = 0;
	m->order[n] = g->base + (start - g->start); /* the key, packed later */
}

/* A function with a name and a size: one candidate per range it meets. */
static void add_symbol(struct pm *m, const uint8_t *sym)
{
	uint64_t size = le64(sym + 16), lo, hi;
	unsigned type = sym[4] & 15;

	if (!le32(sym) || !size || (type != STT_FUNC && type != STT_GNU_IFUNC))
		return;
	if (!biased(le64(sym + 8), m->q->bias, &lo))
		return;
	hi = lo + size < lo ? ~0UL : lo + size;
	for (uint64_t r = first_range(m, lo);
	     r < m->q->range_count && m->ranges[r].start < hi; r++)
		add_candidate(m, r, lo, hi, sym);
}

/* The table io_len bytes at a time. */
static long read_symbols(struct pm *m)
{
	struct pp_perf_map *q = m->q;
	uint64_t per = q->io_len / SYM_SIZE;

	q->count = 0;
	for (uint64_t first = 0; first < q->sym_count; first += per) {
		uint64_t k = min_u64(per, q->sym_count - first);

		if (pread_full(m, PP_PM_STEP_SYMBOLS, m->io, k * SYM_SIZE,
			       q->sym_off + first * SYM_SIZE))
			return -1;
		for (uint64_t i = 0; i < k; i++)
			add_symbol(m, m->io + i * SYM_SIZE);
	}
	if (q->count > q->cand_cap) {
		q->need = q->count;
		q->count = 0;
		return fail(m, PP_PM_STEP_ROOM, ENOSPC);
	}
	return 0;
}

// ---------------------------------------------------------------------------
// Collect, step 2: candidates by address (a stable radix sort).

/* Stable LSD radix sort of a[0..n) on bits [lo, hi), RADIX_BITS at a time,
 * through tmp; returns the array holding the result. */
static uint64_t *radix_sort(uint64_t *a, uint64_t *tmp, uint64_t n,
			    unsigned lo, unsigned hi)
{
	uint32_t count[1 << RADIX_BITS];

	for (unsigned shift = lo; shift < hi; shift += RADIX_BITS) {
		uint64_t mask = (1UL << RADIX_BITS) - 1, sum = 0, *swap;

		for (uint64_t d = 0; d <= mask; d++)
			count[d] = 0;
		for (uint64_t i = 0; i < n; i++)
			count[(a[i] >> shift) & mask]++;
		for (uint64_t d = 0; d <= mask; d++) {
			uint64_t c = count[d];

			count[d] = (uint32_t)sum;
			sum += c;
		}
		for (uint64_t i = 0; i < n; i++)
			tmp[count[(a[i] >> shift) & mask]++] = a[i];
		swap = a;
		a = tmp;
		tmp = swap;
	}
	return a;
}

/* Packs each key with its index (equal keys stay in table order) and
 * sorts; the key (offset in the ranges) and the index must fit 64 bits. */
static long sort_by_address(struct pm *m)
{
	struct pp_perf_map *q = m->q;
	struct pp_pm_range *last = &m->ranges[q->range_count - 1];
	unsigned key_bits = bits_of(last->base + (last->end - last->start) - 1);
	uint64_t *sorted;

	if (key_bits + m->idx_bits > 64)
		return fail(m, PP_PM_STEP_SORT, EOVERFLOW);
	for (uint64_t i = 0; i < q->count; i++)
		m->order[i] = m->order[i] << m->idx_bits | i;
	sorted = radix_sort(m->order, (uint64_t *)q->order_tmp, q->count,
			    m->idx_bits, m->idx_bits + key_bits);
	if (sorted != m->order)
		pp_copy(m->order, sorted, q->count * 8);
	return 0;
}

// ---------------------------------------------------------------------------
// Collect, step 3: the candidates that share their address with another.

/* Candidates in address order are scattered in cand: ask for the one
 * PREFETCH places ahead while working on this one. */
static void prefetch(struct pm *m, uint64_t j)
{
	if (j + PREFETCH < m->q->count)
		__builtin_prefetch(&m->cand[m->order[j + PREFETCH] &
					   ((1UL << m->idx_bits) - 1)], 1);
}

/* Flags the candidates whose address another has too (aliases), and
 * counts them: only their names are kept, in the pool, to choose one. */
static void mark_shared(struct pm *m)
{
	uint64_t n = m->q->count, mask = (1UL << m->idx_bits) - 1;

	m->q->shared = 0;
	for (uint64_t j = 1; j < n; j++) {
		prefetch(m, j);
		if (m->order[j] >> m->idx_bits != m->order[j - 1] >> m->idx_bits)
			continue;
		for (uint64_t k = j - 1; k <= j; k++) {
			struct pp_pm_cand *c = &m->cand[m->order[k] & mask];

			m->q->shared += !(c->flags & PM_SHARED);
			c->flags |= PM_SHARED;
		}
	}
}

// ---------------------------------------------------------------------------
// Names: a window of the string table in io, read a chunk at a time.

#define ONES 0x0101010101010101UL
#define HIGHS 0x8080808080808080UL

/* The high bit of each byte of w that is 0: exact up to the first one. */
static uint64_t zero_bytes(uint64_t w) { return (w - ONES) & ~w & HIGHS; }

/* The same for the bytes of w equal to b. */
static uint64_t bytes_equal(uint64_t w, uint8_t b)
{
	return zero_bytes(w ^ (ONES * b));
}

/* The length of the name at p, whose NUL is before end, a word at a time;
 * sets PM_VERSIONED when it holds '@', PM_CRLF when it holds CR or LF. */
static uint64_t scan_name(const uint8_t *p, const uint8_t *end,
			  uint8_t *flags)
{
	const uint8_t *s = p;

	for (; p + 8 <= end; p += 8) {
		uint64_t w = *(const unaligned_u64 *)p, z = zero_bytes(w);
		uint64_t before = z ? ((z & -z) >> 7) - 1 : ~0UL;

		if (bytes_equal(w, '@') & before)
			*flags |= PM_VERSIONED;
		if ((bytes_equal(w, '\n') | bytes_equal(w, '\r')) & before)
			*flags |= PM_CRLF;
		if (z)
			return (uint64_t)(p - s) + __builtin_ctzll(z) / 8;
	}
	for (; *p; p++) {
		*flags |= *p == '@' ? PM_VERSIONED : 0;
		*flags |= *p == '\n' || *p == '\r' ? PM_CRLF : 0;
	}
	return (uint64_t)(p - s);
}

/* Names are read from chunk-aligned offsets, a chunk and SLACK at a time. */
static uint64_t chunk_len(struct pm *m) { return m->q->io_len - SLACK; }

/* Reads the table from `at` into io (as much as fits). */
static long load_window(struct pm *m, uint64_t at)
{
	uint64_t len = min_u64(m->q->io_len, m->q->str_size - at);
	uint64_t whole = len;

	m->win_at = at;
	m->win_len = m->win_whole = 0;
	if (pread_full(m, PP_PM_STEP_STRINGS, m->io, len, m->q->str_off + at))
		return -1;
	while (whole && m->io[whole - 1])
		whole--;
	m->win_len = len;
	m->win_whole = whole;
	return 0;
}

/* Whether the name at off starts and ends in the window. */
static int in_window(struct pm *m, uint64_t off)
{
	return off >= m->win_at && off - m->win_at < m->win_whole;
}

/* A name: where it is in io (0 when it is longer than the window), its
 * length and PM_VERSIONED, PM_CRLF. */
struct name {
	uint8_t *p;
	uint64_t len;
	uint8_t flags;
};

/* The length of a name longer than the window, reading on in io. */
static long far_length(struct pm *m, uint64_t off, uint64_t *len)
{
	for (uint64_t at = off;; at += m->win_len) {
		if (at >= m->q->str_size) {
			m->q->at = off;
			return fail(m, PP_PM_STEP_NAME, EINVAL);
		}
		if (load_window(m, at))
			return -1;
		for (uint64_t i = 0; i < m->win_len; i++) {
			if (!m->io[i]) {
				*len = at + i - off;
				m->win_len = m->win_whole = 0; /* not a chunk */
				return 0;
			}
		}
	}
}

/* The name at off: in the window, loaded from its chunk, else from off
 * itself; a name longer than the window is measured only (n->p = 0). */
static long name_at(struct pm *m, uint64_t off, struct name *n)
{
	n->flags = 0;
	n->p = 0;
	if (off >= m->q->str_size) {
		m->q->at = off;
		return fail(m, PP_PM_STEP_NAME, EINVAL);
	}
	if (!in_window(m, off) && load_window(m, off - off % chunk_len(m)))
		return -1;
	if (!in_window(m, off) && load_window(m, off))
		return -1;
	if (!in_window(m, off)) {
		if (m->win_at + m->win_len < m->q->str_size)
			return far_length(m, off, &n->len);
		m->q->at = off;
		return fail(m, PP_PM_STEP_NAME, EINVAL); /* no NUL */
	}
	n->p = m->io + (off - m->win_at);
	n->len = scan_name(n->p, m->io + m->win_whole, &n->flags);
	return 0;
}

/* The chunk of a name offset; one past the last for an offset outside the
 * table (name_at refuses it when its turn comes). */
static uint64_t chunk_of(struct pm *m, uint64_t off, uint64_t chunks)
{
	return min_u64(off / chunk_len(m), chunks);
}

/* Candidates grouped by the chunk their name is in (a counting sort,
 * counters in io): the order in which each chunk is read once. */
static void order_by_name(struct pm *m)
{
	uint64_t n = m->q->count, chunks = m->q->str_size / chunk_len(m) + 1;
	uint32_t *count = (uint32_t *)m->io;
	uint64_t sum = 0;

	for (uint64_t d = 0; d <= chunks; d++)
		count[d] = 0;
	for (uint64_t i = 0; i < n; i++)
		count[chunk_of(m, m->cand[i].name, chunks)]++;
	for (uint64_t d = 0; d <= chunks; d++) {
		uint64_t c = count[d];

		count[d] = (uint32_t)sum;
		sum += c;
	}
	for (uint64_t i = 0; i < n; i++)
		m->by_name[count[chunk_of(m, m->cand[i].name, chunks)]++] = i;
	m->win_at = m->win_len = m->win_whole = 0; /* io no longer a window */
}

// ---------------------------------------------------------------------------
// Lines, collected in out and appended out_len bytes at a time.

/* Appends what out holds. */
static long flush(struct pm *m)
{
	long ret = write_all(m, m->out, m->out_used);

	m->out_used = 0;
	return ret;
}

/* v in lowercase hex without leading zeros. */
static uint8_t *put_hex(uint8_t *p, uint64_t v)
{
	unsigned digits = v ? (bits_of(v) + 3) / 4 : 1;

	for (unsigned i = digits; i-- > 0; v >>= 4)
		p[i] = "0123456789abcdef"[v & 15];
	return p + digits;
}

/* n bytes, a word at a time (names are short: no rep movsb start-up). */
static void copy_bytes(uint8_t *dst, const uint8_t *src, uint64_t n)
{
	uint64_t i = 0;

	for (; i + 8 <= n; i += 8)
		*(unaligned_u64 *)(dst + i) = *(const unaligned_u64 *)(src + i);
	for (; i < n; i++)
		dst[i] = src[i];
}

/* The name at p; CR and LF would end the line early: they become spaces. */
static uint8_t *put_name(uint8_t *p, const struct name *n)
{
	if (!(n->flags & PM_CRLF)) {
		copy_bytes(p, n->p, n->len);
		return p + n->len;
	}
	for (uint64_t i = 0; i < n->len; i++) {
		uint8_t b = n->p[i];

		*p++ = b == '\n' || b == '\r' ? ' ' : b;
	}
	return p;
}

/* `START SIZE ` in out, flushed first when a line of len more would not fit. */
static long put_head(struct pm *m, struct pp_pm_cand *c, uint64_t len)
{
	uint8_t *p;

	if (m->out_used + LINE_HEAD + len + 1 > m->q->out_len && flush(m))
		return -1;
	p = put_hex(m->out + m->out_used, c->start);
	*p++ = ' ';
	p = put_hex(p, c->size);
	*p++ = ' ';
	m->out_used = (uint64_t)(p - m->out);
	m->q->symbols++;
	return 0;
}

/* A name longer than out: written from where it is, made safe in place. */
static long write_long_name(struct pm *m, struct name *n)
{
	put_name(n->p, n);
	if (flush(m) || write_all(m, n->p, n->len))
		return -1;
	m->out[m->out_used++] = '\n';
	return 0;
}

/* The line of c, its name longer than the window: read and written in
 * pieces of io. */
static long far_line(struct pm *m, struct pp_pm_cand *c, struct name *n)
{
	if (put_head(m, c, n->len) || flush(m))
		return -1;
	for (uint64_t done = 0; done < n->len;) {
		struct name piece = { m->io, min_u64(n->len - done, m->q->io_len),
				      PM_CRLF };

		if (pread_full(m, PP_PM_STEP_STRINGS, m->io, piece.len,
			       m->q->str_off + c->name + done))
			return -1;
		put_name(m->io, &piece);
		if (write_all(m, m->io, piece.len))
			return -1;
		done += piece.len;
	}
	m->win_len = m->win_whole = 0;
	m->out[m->out_used++] = '\n';
	return 0;
}

/* The line of c, named n. */
static long line(struct pm *m, struct pp_pm_cand *c, struct name *n)
{
	if (!n->p)
		return far_line(m, c, n);
	if (put_head(m, c, n->len))
		return -1;
	if (m->out_used + n->len + 1 > m->q->out_len)
		return write_long_name(m, n);
	m->out_used = (uint64_t)(put_name(m->out + m->out_used, n) - m->out);
	m->out[m->out_used++] = '\n';
	return 0;
}

// ---------------------------------------------------------------------------
// Write, step 1: one pass over the names. A candidate alone at its address
// gets its line now; the name of one sharing it is copied into the pool.

/* Copies the name of c into the pool, when there is room; counts it. */
static long pool_name(struct pm *m, struct pp_pm_cand *c, struct name *n)
{
	uint64_t at = m->pool_used;

	m->pool_used += n->len + 1;
	if (m->pool_used > m->q->pool_len)
		return 0; /* counted: the caller makes room and calls again */
	if (n->p)
		copy_bytes(m->pool + at, n->p, n->len);
	else if (pread_full(m, PP_PM_STEP_STRINGS, m->pool + at, n->len,
			    m->q->str_off + c->name))
		return -1;
	m->pool[at + n->len] = 0;
	if (!n->p)
		scan_name(m->pool + at, m->pool + at + n->len + 1, &n->flags);
	c->pool = n->len << 32 | (at + 1);
	c->flags |= n->flags & (PM_VERSIONED | PM_CRLF);
	return 0;
}

/* All names (singles: also write the lone candidates' lines), in the order
 * of their chunks; ENOSPC when the pool was short (the caller makes room
 * and calls PP_PM_WRITE_SHARED). */
static long visit_names(struct pm *m, int singles)
{
	m->pool_used = 0;
	for (uint64_t j = 0; j < m->q->count; j++) {
		struct pp_pm_cand *c = &m->cand[m->by_name[j]];
		int shared = c->flags & PM_SHARED;
		struct name n;

		if (!shared && !singles)
			continue;
		if (name_at(m, c->name, &n))
			return -1;
		if (!shared && !n.len)
			c->flags |= PM_NAMELESS;
		else if (shared ? pool_name(m, c, &n) : line(m, c, &n))
			return -1;
	}
	if (m->pool_used > m->q->pool_len) {
		m->q->need = m->pool_used;
		return fail(m, PP_PM_STEP_POOL, ENOSPC);
	}
	return 0;
}

// ---------------------------------------------------------------------------
// Write, step 2: of the candidates sharing an address, the best named.

/* Global before weak before local, then anything else. */
static int bind_rank(uint8_t bind)
{
	return bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1
					 : bind == STB_LOCAL ? 2 : 3;
}

/* A shared candidate's name in the pool, and its length. */
static uint8_t *pooled(struct pm *m, struct pp_pm_cand *c)
{
	return m->pool + (uint32_t)c->pool - 1;
}

static uint64_t pooled_len(struct pp_pm_cand *c) { return c->pool >> 32; }

/* Whether a's name is preferred to b's (both in the pool). */
static int better(struct pm *m, struct pp_pm_cand *a, struct pp_pm_cand *b)
{
	const uint8_t *na = pooled(m, a), *nb = pooled(m, b);
	uint64_t la = pooled_len(a), lb = pooled_len(b);

	if ((a->flags ^ b->flags) & PM_VERSIONED)
		return !(a->flags & PM_VERSIONED);
	if (bind_rank(a->bind) != bind_rank(b->bind))
		return bind_rank(a->bind) < bind_rank(b->bind);
	if (a->sym_size != b->sym_size)
		return a->sym_size > b->sym_size;
	if (la != lb)
		return la < lb;
	for (uint64_t k = 0; k < la; k++)
		if (na[k] != nb[k])
			return na[k] < nb[k];
	return 0;
}

/* The best named of order[from, to) (one address), or 0 when none has a name. */
static struct pp_pm_cand *best_of(struct pm *m, uint64_t from, uint64_t to)
{
	uint64_t mask = (1UL << m->idx_bits) - 1;
	struct pp_pm_cand *best = 0;

	for (uint64_t j = from; j < to; j++) {
		struct pp_pm_cand *c = &m->cand[m->order[j] & mask];

		if (pooled_len(c) && (!best || better(m, c, best)))
			best = c;
	}
	return best;
}

/* Walks the addresses in order: writes each shared one's chosen line, and
 * sums the bytes inside a written line (overlaps counted once). */
static long write_chosen(struct pm *m)
{
	uint64_t n = m->q->count, mask = (1UL << m->idx_bits) - 1, reach = 0;

	m->q->covered = 0;
	for (uint64_t j = 0, k; j < n; j = k) {
		struct pp_pm_cand *c = &m->cand[m->order[j] & mask];

		for (k = j + 1; k < n && m->order[k] >> m->idx_bits ==
						 m->order[j] >> m->idx_bits; k++)
			prefetch(m, k);
		prefetch(m, j);
		if (c->flags & PM_SHARED) {
			c = best_of(m, j, k);
			if (c) {
				struct name best = { pooled(m, c), pooled_len(c),
						     c->flags & PM_CRLF };

				if (line(m, c, &best))
					return -1;
			}
		} else if (c->flags & PM_NAMELESS) {
			c = 0;
		}
		if (c && c->start + c->size > reach) {
			m->q->covered += c->start + c->size -
					 (c->start > reach ? c->start : reach);
			reach = c->start + c->size;
		}
	}
	return 0;
}

// ---------------------------------------------------------------------------
// The calls.

/* PP_PM_COLLECT: the candidates, sorted by address, aliases marked. */
static long collect(struct pm *m)
{
	if (read_symbols(m))
		return -1;
	m->idx_bits = bits_of(m->q->count) ? bits_of(m->q->count) : 1;
	if (sort_by_address(m))
		return -1;
	mark_shared(m);
	return 0;
}

/* PP_PM_WRITE, or PP_PM_WRITE_SHARED after a short pool. A short pool
 * still lets the lone candidates' lines out. */
static long write_lines(struct pm *m, int singles)
{
	long ret;

	m->idx_bits = bits_of(m->q->count) ? bits_of(m->q->count) : 1;
	order_by_name(m);
	ret = visit_names(m, singles);
	if (!ret)
		ret = write_chosen(m);
	if (!ret || m->q->step == PP_PM_STEP_POOL)
		return flush(m) ? -1 : ret;
	return ret;
}

/* Runs one request (struct pp_perf_map, primer.h); 0 when it succeeded,
 * else its step and errno are set. */
__attribute__((visibility("default"))) uint64_t
pp_perf_map(struct pp_perf_map *q)
{
	struct pm m = {
		.q = q,
		.ranges = (struct pp_pm_range *)q->ranges,
		.cand = (struct pp_pm_cand *)q->cand,
		.order = (uint64_t *)q->order,
		.by_name = (uint64_t *)q->order_tmp,
		.io = (uint8_t *)q->io,
		.out = (uint8_t *)q->out,
		.pool = (uint8_t *)q->pool,
	};

	q->step = PP_PM_OK;
	q->err = q->at = q->need = 0;
	if (!check_request(&m))
		return (uint64_t)fail(&m, PP_PM_STEP_CHECK, EINVAL);
	if (q->op == PP_PM_COLLECT)
		return (uint64_t)collect(&m);
	q->symbols = q->written = 0;
	return (uint64_t)write_lines(&m, q->op == PP_PM_WRITE);
}
