/* The plan ABI shared with src/trampoline.ts: operations, flags, steps and
 * the region record. Change PP_ABI_VERSION when any of it changes. */
#ifndef PP_PRIMER_H
#define PP_PRIMER_H

#include <stdint.h>

#define PP_ABI_VERSION 7

#define HUGE_SIZE (2UL << 20)

/* Operations. */
#define PP_OP_SWAP 1
#define PP_OP_RESTORE 2

/* Flags. */
#define PP_F_SMALL 0x1     /* copy on 4 KiB pages: no THP, no collapse */
#define PP_F_FROM_FILE 0x2 /* fill with pread from fd (mapping == file) */
#define PP_F_HUGETLB 0x4   /* stage in the reserved hugetlb pool */
#define PP_F_MEMFD 0x8     /* stage in the memfd stage_fd (MAP_SHARED) */
#define PP_F_SHARED 0x10   /* stage_fd is a verified, filled shared copy:
                              map it read-only, do not fill */
#define PP_F_DIFFERS_FROM_FILE 0x20 /* memory differs from the file (RELRO,
                              private pages): never map the file over it;
                              a failed swap is undone from the stage, and
                              restore copies memory onto 4 KiB pages */

/* Steps, reported in `step` when one fails. */
enum pp_step {
	PP_OK = 0,
	PP_STEP_CHECK = 1,
	PP_STEP_STAGE = 2,
	PP_STEP_TRIM = 3,
	PP_STEP_ADVISE = 4,
	PP_STEP_PROTECT = 5,
	PP_STEP_SWAP = 6,
	PP_STEP_RESTORE = 7,
	PP_STEP_UNMAP_EXTENSION = 8,
	PP_STEP_FILL = 9,
	PP_STEP_POPULATE = 10,
};

/* One region record; every field is 64 bits so both sides agree on layout. */
struct pp_region {
	uint64_t op;         /* PP_OP_* */
	uint64_t start;      /* destination, 2 MiB aligned */
	uint64_t len;        /* bytes, a multiple of 2 MiB */
	uint64_t data_start; /* the part that exists in the original mapping */
	uint64_t data_len;
	uint64_t prot;       /* final protection */
	uint64_t flags;      /* PP_F_* */
	uint64_t name;       /* NUL-terminated name for the VMA, or 0 */
	uint64_t fd;         /* the file, for restore and for recovery */
	uint64_t file_off;   /* file offset of data_start */
	/* results */
	uint64_t step;          /* enum pp_step that failed, 0 when ok */
	uint64_t err;           /* its errno */
	uint64_t collapse_err;  /* errno of MADV_COLLAPSE, 0 when it worked */
	uint64_t name_err;      /* errno of PR_SET_VMA_ANON_NAME */
	uint64_t recovered;     /* 1: a failed swap was undone by remapping the file */
	uint64_t stage;         /* staging address used */
	/* input again */
	uint64_t stage_fd;      /* the memfd or shared copy for PP_F_MEMFD */
	uint64_t fault_at;      /* tests: fail this syscall (1-based), 0: none */
	uint64_t fault_errno;   /* tests: with this errno */
	/* result */
	uint64_t calls;         /* syscalls made (or failed by injection) */
};

#endif
