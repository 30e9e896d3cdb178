// SPDX-License-Identifier: MIT
/*
 * page-primer CPUID reader: src/tools/footprint.ts asks the CPU for its
 * instruction-TLB sizes (AMD leaves 0x80000005 and 0x80000006, Intel leaf
 * 0x18), which neither /proc nor /sys lists. One instruction, no syscall,
 * no memory but the caller's four 32-bit words.
 */
#include <stdint.h>
#include "primer.h"

#if defined(__x86_64__)
#include "arch_x86_64.h"
#else
#error "page-primer trampoline: only x86_64 so far"
#endif

/* Runs CPUID with EAX = leaf and ECX = subleaf and stores EAX, EBX, ECX,
 * EDX in out[0..3]. Returns 0. */
__attribute__((visibility("default"))) uint64_t
pp_cpuid(uint64_t leaf, uint64_t subleaf, uint32_t *out)
{
	pp_arch_cpuid((uint32_t)leaf, (uint32_t)subleaf, out);
	return 0;
}
