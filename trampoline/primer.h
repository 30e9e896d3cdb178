/* The plan ABI shared with src/remap/trampoline.ts: operations, flags, steps and
 * the region record; the perf map request (perf_map.c); pp_cpuid (cpuid.c); the
 * calibration request (calibrate.c); the list of loaded objects (objects.c,
 * read by src/sys/loader.ts). Change PP_ABI_VERSION when any of it changes. */
#ifndef PP_PRIMER_H
#define PP_PRIMER_H

#include <stdint.h>

#define PP_ABI_VERSION 11

#define HUGE_SIZE (2UL << 20)

/* Operations. */
#define PP_OP_SWAP 1
#define PP_OP_RESTORE 2

/* Flags. */
#define PP_F_4K 0x1        /* copy on 4 KiB pages: no THP, no collapse */
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

/* The perf map writer (perf_map.c): operations of a request. */
#define PP_PM_COLLECT 1 /* symbols -> candidates sorted by address */
#define PP_PM_WRITE 2   /* names -> lines appended to map_fd */
#define PP_PM_WRITE_SHARED 3 /* after PP_PM_STEP_POOL: the lines of the
				addresses several candidates share */

/* Steps of the perf map writer, reported in `step` when one fails. */
enum pp_pm_step {
	PP_PM_OK = 0,
	PP_PM_STEP_CHECK = 1,   /* a bad request: EINVAL */
	PP_PM_STEP_SYMBOLS = 2, /* pread of the symbol table */
	PP_PM_STEP_ROOM = 3,    /* more candidates than cand_cap: ENOSPC, need */
	PP_PM_STEP_SORT = 4,    /* key and index wider than 64 bits: EOVERFLOW */
	PP_PM_STEP_STRINGS = 5, /* pread of the string table */
	PP_PM_STEP_NAME = 6,    /* name offset `at` outside the table, or its
				   name without a NUL: EINVAL */
	PP_PM_STEP_POOL = 7,    /* the shared names need more than pool_len:
				   ENOSPC, need (bytes); the lone candidates'
				   lines were written */
	PP_PM_STEP_WRITE = 8,   /* write to map_fd */
};

/* A range of runtime addresses to name, [start, end). */
struct pp_pm_range {
	uint64_t start;
	uint64_t end;
	uint64_t base; /* filled by PP_PM_COLLECT: bytes of the ranges before */
};

/* Words (64 bits) per candidate in `cand`: the caller sizes it so. */
#define PP_PM_CAND_WORDS 5

/* One perf map request; every field is 64 bits. The buffers are the
 * caller's and stay the same from PP_PM_COLLECT to PP_PM_WRITE. */
struct pp_perf_map {
	uint64_t op;          /* PP_PM_* */
	uint64_t file_fd;     /* the object's file, read with pread */
	uint64_t sym_off;     /* its symbol table: file offset */
	uint64_t sym_count;   /*   entries (Elf64_Sym, 24 bytes) */
	uint64_t str_off;     /* the table's string table: file offset */
	uint64_t str_size;    /*   bytes */
	uint64_t bias;        /* runtime address minus st_value, mod 2^64 */
	uint64_t ranges;      /* struct pp_pm_range[range_count], sorted, disjoint */
	uint64_t range_count;
	uint64_t io;          /* scratch for reads, 8-aligned, >= 64 KiB */
	uint64_t io_len;
	uint64_t out;         /* scratch for lines, >= 4 KiB */
	uint64_t out_len;
	uint64_t cand;        /* PP_PM_CAND_WORDS words per candidate */
	uint64_t order;       /* uint64_t per candidate: by address */
	uint64_t order_tmp;   /* uint64_t per candidate: sorting, names */
	uint64_t cand_cap;    /* candidates the three have room for */
	uint64_t pool;        /* PP_PM_WRITE: room for the shared names */
	uint64_t pool_len;
	uint64_t map_fd;      /* PP_PM_WRITE: the map, opened O_APPEND */
	/* results */
	uint64_t step;        /* enum pp_pm_step that failed, 0 when ok */
	uint64_t err;         /* its errno */
	uint64_t at;          /* PP_PM_STEP_NAME: the name offset */
	uint64_t need;        /* PP_PM_STEP_ROOM: candidates; _POOL: bytes */
	uint64_t count;       /* candidates (input again to PP_PM_WRITE) */
	uint64_t shared;      /* of them, sharing their address with another */
	uint64_t symbols;     /* lines written */
	uint64_t covered;     /* bytes of the ranges inside a written line */
	uint64_t written;     /* bytes appended to the map */
};

/* The calibration driver (calibrate.c): operations of a request. */
#define PP_CAL_MAP 1   /* map the image on 2 MiB or 4 KiB pages, read+exec */
#define PP_CAL_RUN 2   /* calls through the table */
#define PP_CAL_UNMAP 3 /* unmap an area PP_CAL_MAP returned */

/* Flags of a calibration request. */
#define PP_CAL_F_HUGE 0x1    /* PP_CAL_MAP: MADV_HUGEPAGE + MADV_COLLAPSE
				(else MADV_NOHUGEPAGE) */
#define PP_CAL_F_SYSCALL 0x2 /* PP_CAL_RUN: one gettid() after each call */

/* Steps of the calibration driver, reported in `step` when one fails. */
enum pp_cal_step {
	PP_CAL_OK = 0,
	PP_CAL_STEP_CHECK = 1,   /* a bad request: EINVAL */
	PP_CAL_STEP_MAP = 2,     /* mmap of the area */
	PP_CAL_STEP_TRIM = 3,    /* munmap of the alignment slack */
	PP_CAL_STEP_ADVISE = 4,  /* MADV_HUGEPAGE / MADV_NOHUGEPAGE */
	PP_CAL_STEP_PROTECT = 5, /* mprotect read+exec */
	PP_CAL_STEP_UNMAP = 6,   /* munmap of the area */
};

/* One calibration request; every field is 64 bits. */
struct pp_calibrate {
	uint64_t op;           /* PP_CAL_* */
	uint64_t flags;        /* PP_CAL_F_* */
	uint64_t start;        /* MAP: result; RUN, UNMAP: the area */
	uint64_t len;          /* bytes of the area, a multiple of 2 MiB */
	uint64_t image;        /* MAP: the code, copied to start */
	uint64_t image_len;    /*   bytes, <= len */
	uint64_t table;        /* RUN: uint32_t offsets of functions from start */
	uint64_t table_len;    /*   entries, cycled through */
	uint64_t calls;        /* RUN: calls to make */
	uint64_t x;            /* RUN: first argument; out: last return value */
	/* results */
	uint64_t step;         /* enum pp_cal_step that failed, 0 when ok */
	uint64_t err;          /* its errno */
	uint64_t collapse_err; /* MAP with PP_CAL_F_HUGE: errno of MADV_COLLAPSE */
	uint64_t cpu_ns;       /* RUN: this thread's CPU time over the calls,
				  ns (CLOCK_THREAD_CPUTIME_ID); 0: no clock */
};

/* The list of loaded objects (objects.c): one record per object, each
 * followed by name_len bytes of its name (no NUL) padded with zeros to a
 * multiple of 8, then phnum program headers of PP_PHDR_SIZE bytes. */
struct pp_object {
	uint64_t bias;     /* dlpi_addr: the load bias */
	uint64_t phdr;     /* dlpi_phdr: its program headers in memory */
	uint64_t phnum;    /* dlpi_phnum */
	uint64_t name_len; /* bytes of dlpi_name, at most PP_OBJECT_NAME_MAX */
};

/* Bytes of one ELF64 program header. */
#define PP_PHDR_SIZE 56

/* The longest name copied (PATH_MAX); a longer one is cut there. */
#define PP_OBJECT_NAME_MAX 4096

#endif
