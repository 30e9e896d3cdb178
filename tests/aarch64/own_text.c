// SPDX-License-Identifier: MIT
/*
 * The aarch64 trampoline on this program's own text, run under qemu-user by
 * tests/aarch64/trampoline_aarch64_test.ts:
 *
 *   own_text <trampoline.so>
 *
 * It dlopens the shipped trampoline, then swaps its own text (the code now
 * running, this function included) for an anonymous copy, restores the file,
 * and walks an injected failure over every syscall of both, for THP, 4 KiB,
 * fill-from-file and differs-from-file records; after each run
 * the text must hold the file's bytes, be mapped as it should, and a
 * function in it must still compute. It is linked static with its text in a
 * 2 MiB-aligned segment of its own (-z separate-code, max-page-size 2 MiB),
 * the layout the planner in src/remap/plan.ts gives a region.
 *
 * One line per check ("ok ..." / "not ok ..."), then "summary <passed>
 * <failed> <runs>"; exit status 0 only if nothing failed. Under qemu-user
 * madvise, MADV_COLLAPSE and THP are not emulated faithfully: this checks
 * bytes, mappings, survival and errors, not huge-page coverage.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "primer.h"

#define MIB2 (2UL << 20)

static uint64_t (*pp_run)(struct pp_region *, uint64_t);
static uint64_t (*pp_abi)(void);
static uint64_t (*pp_cpuid)(uint64_t, uint64_t, uint32_t *);

static int passed, failed, runs;

static void check(int ok, const char *what, long a, long b)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("not ok %s (%ld, %ld)\n", what, a, b);
}

/* The text segment: where, how long, its file offset. */
static struct text {
	uint64_t start, len, off;
} text;

static int find_text(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];
		uint64_t here = (uint64_t)(uintptr_t)&find_text;

		if (p->p_type != PT_LOAD || !(p->p_flags & PF_X))
			continue;
		if (here < info->dlpi_addr + p->p_vaddr ||
		    here >= info->dlpi_addr + p->p_vaddr + p->p_memsz)
			continue;
		text.start = info->dlpi_addr + (p->p_vaddr & ~4095UL);
		text.off = p->p_offset & ~4095UL;
		text.len = (info->dlpi_addr + p->p_vaddr + p->p_memsz -
			    text.start + 4095) & ~4095UL;
		return 1;
	}
	return 0;
}

/* Work done by code in the swapped text: it must still run after each swap. */
__attribute__((noinline)) static uint64_t mix(uint64_t x)
{
	for (int i = 0; i < 1000; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

/* The first line of /proc/self/maps covering addr: 1 if it names a file. */
static int mapped_from_file(uint64_t addr)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int file = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi, ino;
		int n = 0;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %lu %n", &lo, &hi, &ino,
			   &n) < 3)
			continue;
		if (addr >= lo && addr < hi) {
			file = ino != 0;
			break;
		}
	}
	fclose(f);
	return file;
}

static struct pp_region record(uint64_t op, uint64_t flags, int fd)
{
	struct pp_region r;

	memset(&r, 0, sizeof r);
	r.op = op;
	r.start = text.start & ~(MIB2 - 1);
	r.len = ((text.start + text.len + MIB2 - 1) & ~(MIB2 - 1)) - r.start;
	r.data_start = text.start;
	r.data_len = text.len;
	r.prot = PROT_READ | PROT_EXEC;
	r.flags = flags;
	r.fd = (uint64_t)(int64_t)fd;
	r.file_off = text.off;
	return r;
}

/* The text holds the file's bytes, is mapped as `file` says (1: from the
 * file, 0: anonymous, -1: either), and runs. */
static void check_text(const char *what, const uint8_t *want, int file,
		       uint64_t mixed)
{
	char label[160];

	snprintf(label, sizeof label, "%s: bytes", what);
	check(memcmp((const void *)(uintptr_t)text.start, want, text.len) == 0,
	      label, 0, 0);
	snprintf(label, sizeof label, "%s: mapping", what);
	check(file < 0 || mapped_from_file(text.start) == file, label,
	      mapped_from_file(text.start), file);
	snprintf(label, sizeof label, "%s: code runs", what);
	check(mix(7) == mixed, label, 0, 0);
}

/* Records marked PP_F_DIFFERS_FROM_FILE never map the file: a restore
 * copies memory onto 4 KiB pages, a failed swap is undone by a copy. */
static int differs(uint64_t flags)
{
	return (flags & PP_F_DIFFERS_FROM_FILE) != 0;
}

static uint64_t restore_flags(uint64_t flags)
{
	return differs(flags) ? flags | PP_F_4K : flags;
}

static uint64_t run(struct pp_region *r)
{
	runs++;
	return pp_run(r, 1);
}

/* A clean swap and restore; returns the syscalls each made. */
static void clean(const char *name, uint64_t flags, int fd, const uint8_t *want,
		  uint64_t mixed, uint64_t *swap_calls, uint64_t *restore_calls)
{
	char label[160];
	struct pp_region r = record(PP_OP_SWAP, flags, fd);

	snprintf(label, sizeof label, "%s swap: step", name);
	check(run(&r) == 0 && r.step == PP_OK, label, (long)r.step,
	      (long)r.err);
	snprintf(label, sizeof label, "%s swap", name);
	check_text(label, want, 0, mixed);
	*swap_calls = r.calls;
	r = record(PP_OP_RESTORE, restore_flags(flags), fd);
	snprintf(label, sizeof label, "%s restore: step", name);
	check(run(&r) == 0 && r.step == PP_OK, label, (long)r.step,
	      (long)r.err);
	snprintf(label, sizeof label, "%s restore", name);
	check_text(label, want, !differs(flags), mixed);
	*restore_calls = r.calls;
	printf("ok %s: swap %lu syscalls, restore %lu\n", name,
	       (unsigned long)*swap_calls, (unsigned long)*restore_calls);
}

/* Syscall `at` of a swap fails with ENOMEM: either the swap reports the
 * step and the text is the file's as before (undone or recovered), or the
 * failed call was best effort and the swap went through. */
static void fault_swap(const char *name, uint64_t flags, int fd, uint64_t at,
		       const uint8_t *want, uint64_t mixed)
{
	char label[160];
	struct pp_region r = record(PP_OP_SWAP, flags, fd);

	r.fault_at = at;
	r.fault_errno = 12;
	run(&r);
	snprintf(label, sizeof label, "%s swap, syscall %lu fails", name,
		 (unsigned long)at);
	if (r.step != PP_OK) {
		check(r.err == 12, label, (long)r.step, (long)r.err);
		check_text(label, want, differs(flags) ? -1 : 1, mixed);
		return;
	}
	check_text(label, want, 0, mixed);
	r = record(PP_OP_RESTORE, restore_flags(flags), fd);
	check(run(&r) == 0, label, (long)r.step, (long)r.err);
	check_text(label, want, !differs(flags), mixed);
}

/* Syscall `at` of a restore fails: the step is reported, the text still
 * holds the right bytes and runs; a clean restore then puts the file (or
 * a copy) back. A restore by copy may go through a best-effort call. */
static void fault_restore(const char *name, uint64_t flags, int fd,
			  uint64_t at, const uint8_t *want, uint64_t mixed)
{
	char label[160];
	struct pp_region r = record(PP_OP_SWAP, flags, fd);

	snprintf(label, sizeof label, "%s restore, syscall %lu fails", name,
		 (unsigned long)at);
	check(run(&r) == 0, label, (long)r.step, (long)r.err);
	r = record(PP_OP_RESTORE, restore_flags(flags), fd);
	r.fault_at = at;
	r.fault_errno = 12;
	run(&r);
	if (r.step == PP_OK) { /* best effort (a copy's MADV_POPULATE_READ) */
		check_text(label, want, !differs(flags), mixed);
		return;
	}
	check(r.err == 12, label, (long)r.step, (long)r.err);
	check(memcmp((const void *)(uintptr_t)text.start, want, text.len) == 0 &&
		      mix(7) == mixed,
	      label, 0, 0);
	r = record(PP_OP_RESTORE, restore_flags(flags), fd);
	check(run(&r) == 0, label, (long)r.step, (long)r.err);
	check_text(label, want, !differs(flags), mixed);
}

static void scenario(const char *name, uint64_t flags, int fd,
		     const uint8_t *want, uint64_t mixed)
{
	uint64_t swap_calls = 0, restore_calls = 0;

	clean(name, flags, fd, want, mixed, &swap_calls, &restore_calls);
	for (uint64_t at = 1; at <= swap_calls; at++)
		fault_swap(name, flags, fd, at, want, mixed);
	for (uint64_t at = 1; at <= restore_calls; at++)
		fault_restore(name, flags, fd, at, want, mixed);
}

int main(int argc, char **argv)
{
	void *lib;
	uint8_t *want;
	uint64_t mixed = mix(7);
	uint32_t regs[4] = { 1, 2, 3, 4 };
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <trampoline.so>\n", argv[0]);
		return 2;
	}
	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		printf("not ok dlopen: %s\n", dlerror());
		return 1;
	}
	pp_run = (uint64_t(*)(struct pp_region *, uint64_t))dlsym(lib, "pp_run");
	pp_abi = (uint64_t(*)(void))dlsym(lib, "pp_abi");
	pp_cpuid = (uint64_t(*)(uint64_t, uint64_t, uint32_t *))dlsym(lib,
								      "pp_cpuid");
	check(pp_run && pp_abi && pp_cpuid, "symbols", 0, 0);
	if (!pp_run || !pp_abi || !pp_cpuid)
		return 1;
	check(pp_abi() == PP_ABI_VERSION, "pp_abi", (long)pp_abi(),
	      PP_ABI_VERSION);
	/* No CPUID on aarch64: ENOSYS, the words untouched. */
	check(pp_cpuid(0, 0, regs) == 38 && regs[0] == 1 && regs[3] == 4,
	      "pp_cpuid says ENOSYS", 0, 0);
	if (!dl_iterate_phdr(find_text, NULL)) {
		printf("not ok no executable segment found\n");
		return 1;
	}
	check(text.start % MIB2 == 0, "text is 2 MiB aligned", (long)text.start,
	      0);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	want = malloc(text.len);
	if (fd < 0 || !want) {
		printf("not ok open /proc/self/exe\n");
		return 1;
	}
	memcpy(want, (const void *)(uintptr_t)text.start, text.len);
	check_text("before", want, 1, mixed);
	printf("ok text %#lx, %lu KiB at file offset %#lx\n",
	       (unsigned long)text.start, (unsigned long)(text.len >> 10),
	       (unsigned long)text.off);
	scenario("thp", 0, fd, want, mixed);
	scenario("4k", PP_F_4K, fd, want, mixed);
	scenario("from file", PP_F_FROM_FILE, fd, want, mixed);
	{
		/* A record refused at the check changes nothing. */
		struct pp_region r = record(PP_OP_SWAP, 0, fd);

		r.prot = PROT_READ | PROT_WRITE | PROT_EXEC;
		check(run(&r) == 1 && r.step == PP_STEP_CHECK && r.err == 22,
		      "W+X refused", (long)r.step, (long)r.err);
		check_text("after the refused record", want, 1, mixed);
	}
	/* As relocated data would be: filled from memory, undone by a copy
	 * (then synced for instruction fetch), restored by a copy. */
	scenario("differs from file", PP_F_DIFFERS_FROM_FILE, fd, want,
		 mixed);
	printf("summary %d %d %d\n", passed, failed, runs);
	return failed ? 1 : 0;
}
