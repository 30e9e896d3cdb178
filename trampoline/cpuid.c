// SPDX-License-Identifier: MIT
/*
 * page-primer CPUID reader: src/tools/footprint.ts asks the CPU for its
 * instruction-TLB sizes (AMD leaves 0x80000005 and 0x80000006, Intel leaf
 * 0x18), which neither /proc nor /sys lists. One instruction, no syscall,
 * no memory but the caller's four 32-bit words. x86 only: on aarch64 it
 * returns ENOSYS and leaves the words as they were.
 */
#include <stdint.h>
#include "primer.h"

#if defined(__x86_64__)
#include "arch_x86_64.h"
#elif !defined(__aarch64__)
#error "page-primer trampoline: x86_64 and aarch64 only"
#endif

#define ENOSYS 38

/* Runs CPUID with EAX = leaf and ECX = subleaf and stores EAX, EBX, ECX,
 * EDX in out[0..3]. Returns 0, or ENOSYS where there is no CPUID. */
__attribute__((visibility("default"))) uint64_t
pp_cpuid(uint64_t leaf, uint64_t subleaf, uint32_t *out)
{
#if defined(__x86_64__)
	pp_arch_cpuid((uint32_t)leaf, (uint32_t)subleaf, out);
	return 0;
#else
	(void)leaf;
	(void)subleaf;
	(void)out;
	return ENOSYS;
#endif
}
