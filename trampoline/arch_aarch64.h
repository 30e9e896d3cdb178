/* aarch64 parts of the trampoline: raw syscalls, a byte copy that is not a
 * libc call, no CPUID, and the instruction-cache sync of a filled stage. */
#ifndef PP_ARCH_H
#define PP_ARCH_H

/* The generic syscall table (asm-generic/unistd.h): arm64 has no mmap2,
 * no open (openat) and numbers of its own. */
#define PP_SYS_WRITE 64
#define PP_SYS_PREAD64 67
#define PP_SYS_MMAP 222
#define PP_SYS_MPROTECT 226
#define PP_SYS_MUNMAP 215
#define PP_SYS_MREMAP 216
#define PP_SYS_MADVISE 233
#define PP_SYS_PRCTL 167
#define PP_SYS_NANOSLEEP 101
#define PP_SYS_GETTID 178
#define PP_SYS_CLOCK_GETTIME 113

/* svc #0: number in x8, arguments in x0..x5, result in x0. */
static inline long pp_syscall6(long nr, long a, long b, long c, long d,
			       long e, long f)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc #0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory", "cc");
	return x0;
}

typedef uint64_t __attribute__((may_alias)) pp_word;

/* 8 bytes at a time when both ends and the length allow it (the stage and
 * the data are page aligned), else bytes. -fno-builtin and
 * -fno-tree-loop-distribute-patterns keep the compiler from turning the
 * loops into a memcpy call. */
static inline void pp_copy(void *dst, const void *src, unsigned long n)
{
	if ((((unsigned long)dst | (unsigned long)src | n) & 7) == 0) {
		pp_word *d = dst;
		const pp_word *s = src;

		for (unsigned long i = 0; i < n / 8; i++)
			d[i] = s[i];
		return;
	}
	unsigned char *d = dst;
	const unsigned char *s = src;

	for (unsigned long i = 0; i < n; i++)
		d[i] = s[i];
}

/*
 * Instruction-cache coherence of the new pages.
 *
 * Arm does not keep instruction fetch coherent with data stores: bytes
 * written by stores can sit in the data cache (not yet at the point of
 * unification) while the instruction cache, which is physically tagged,
 * may still hold lines of whatever that physical page held before it was
 * freed and given to us. The stage is filled by our own stores (pp_copy),
 * or by the kernel (pread into it, the page cache for a memfd or a
 * shared copy, MADV_COLLAPSE copying into a new huge page), through the
 * stage's read-write, never executable, mapping; it becomes executable
 * only afterwards, by mprotect, and then moves under the original
 * address by mremap. Nothing executes from it before.
 *
 * What the kernel does (arch/arm64): whenever it installs a user PTE or
 * PMD that is executable (set_ptes/set_pmd_at -> __sync_cache_and_tags ->
 * __sync_icache_dcache), it cleans the data cache to the point of
 * unification and invalidates the instruction cache for the whole folio,
 * unless the folio's PG_dcache_clean bit says that was done since the
 * kernel last wrote it (flush_dcache_folio clears the bit; a new page has
 * it clear). mprotect(PROT_EXEC) on our stage goes through that path, so
 * on current kernels the new pages are made coherent by the kernel.
 * But the kernel does not track writes made by user space through another
 * mapping: it sets PG_dcache_clean once and does not look again, which
 * is why user space that writes code (JITs, libgcc's __clear_cache) does
 * its own maintenance; and older arm64 kernels (4.3, for one) skipped the
 * sync for pages without a page-cache mapping, i.e. anonymous memory like
 * our stage. So we do not rely on it: after the fill and before the
 * mprotect, every line of the stage is cleaned to the point of
 * unification (dc cvau) and invalidated in the instruction cache (ic
 * ivau), both broadcast to the inner shareable domain, each batch
 * completed by dsb ish, then isb for this thread. CTR_EL0 gives the line
 * sizes (the kernel traps and sanitises reads of it where cores disagree),
 * and its IDC and DIC bits say when either pass is not needed (cores such
 * as Neoverse N1 set both). Other threads need no isb: the bytes at the
 * original address do not change (the copy is identical), and the new
 * physical pages are reached only through the TLB invalidation mremap
 * makes. Under qemu-user these instructions do nothing; on hardware they
 * cost two cache operations per 64-byte line of the stage when the bits
 * are clear.
 */
static inline void pp_sync_icache(unsigned long start, unsigned long len)
{
	unsigned long ctr, dline, iline, a, end = start + len;

	__asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
	dline = 4UL << ((ctr >> 16) & 0xf); /* DminLine, log2 of words */
	iline = 4UL << (ctr & 0xf);         /* IminLine */
	if (!(ctr & (1UL << 28))) {         /* IDC clear: clean to PoU */
		for (a = start & ~(dline - 1); a < end; a += dline)
			__asm__ volatile("dc cvau, %0" : : "r"(a) : "memory");
	}
	__asm__ volatile("dsb ish" : : : "memory");
	if (!(ctr & (1UL << 29))) {         /* DIC clear: invalidate */
		for (a = start & ~(iline - 1); a < end; a += iline)
			__asm__ volatile("ic ivau, %0" : : "r"(a) : "memory");
		__asm__ volatile("dsb ish" : : : "memory");
	}
	__asm__ volatile("isb" : : : "memory");
}

#endif
