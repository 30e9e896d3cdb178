/* Kernel ABI constants the trampoline uses (uapi values, same on x86_64
 * and aarch64). Kept here so primer.c reads as the steps only. */
#ifndef PP_LINUX_ABI_H
#define PP_LINUX_ABI_H

#define PROT_READ 0x1
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_HUGETLB 0x40000
#define MAP_HUGE_2MB (21 << 26)
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#define MADV_COLLAPSE 25
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0

#endif
