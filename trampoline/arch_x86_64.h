/* x86_64 parts of the trampoline: raw syscalls, a byte copy that is not a
 * libc call, CPUID, and the (empty) instruction-cache sync. */
#ifndef PP_ARCH_H
#define PP_ARCH_H

#define PP_SYS_WRITE 1
#define PP_SYS_PREAD64 17
#define PP_SYS_MMAP 9
#define PP_SYS_MPROTECT 10
#define PP_SYS_MUNMAP 11
#define PP_SYS_MREMAP 25
#define PP_SYS_MADVISE 28
#define PP_SYS_PRCTL 157
#define PP_SYS_NANOSLEEP 35
#define PP_SYS_GETTID 186
#define PP_SYS_CLOCK_GETTIME 228

static inline long pp_syscall6(long nr, long a, long b, long c, long d,
                               long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline void pp_copy(void *dst, const void *src, unsigned long n)
{
	__asm__ volatile("rep movsb"
			 : "+D"(dst), "+S"(src), "+c"(n)
			 :
			 : "memory");
}

/* CPUID leaf/subleaf: EAX, EBX, ECX, EDX into out[0..3]. */
static inline void pp_arch_cpuid(uint32_t leaf, uint32_t subleaf,
				 uint32_t *out)
{
	uint32_t a, b, c, d;

	__asm__ volatile("cpuid"
			 : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
			 : "a"(leaf), "c"(subleaf));
	out[0] = a;
	out[1] = b;
	out[2] = c;
	out[3] = d;
}

/* x86 keeps instruction fetch coherent with stores: nothing to do. */
static inline void pp_sync_icache(unsigned long start, unsigned long len)
{
	(void)start;
	(void)len;
}

#endif
