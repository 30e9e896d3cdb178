// SPDX-License-Identifier: MIT
/*
 * page-primer's list of loaded objects, for src/sys/loader.ts.
 *
 * dl_iterate_phdr holds the loader's write lock while its callback runs. A
 * JavaScript callback there may start a thread (pthread_create waits for the
 * loader's TLS lock), while another thread's dlopen holds that lock and waits
 * for the write lock: both wait forever. This callback runs no JavaScript: it
 * copies each object's load bias, name and program headers into the caller's
 * buffer, which TypeScript reads after the lock is released. No syscall, no
 * allocation, no lock; dl_iterate_phdr's address comes from the caller, so the
 * trampoline still links nothing.
 */
#include <stdint.h>
#include "primer.h"

/* The head of struct dl_phdr_info (<link.h>), the same on x86_64 and aarch64. */
struct loader_info {
	uint64_t addr;
	const char *name;
	const uint8_t *phdr;
	uint16_t phnum;
};

/* The bytes of struct loader_info a callback needs from the loader. */
#define LOADER_INFO_MIN 26

typedef int (*iterate_callback)(struct loader_info *, uint64_t, void *);
typedef int (*iterate_fn)(iterate_callback, void *);

/* The caller's buffer: cap bytes at buf; used counts what the whole list
 * needs, also past cap, so the caller knows what to retry with. */
struct object_list {
	uint8_t *buf;
	uint64_t cap;
	uint64_t used;
};

/* Appends len bytes (zeros when src is 0) where they fit; counts them all. */
static void put(struct object_list *l, const void *src, uint64_t len)
{
	const uint8_t *from = src;
	uint64_t i;

	if (l->used <= l->cap && len <= l->cap - l->used) {
		for (i = 0; i < len; i++)
			l->buf[l->used + i] = from ? from[i] : 0;
	}
	l->used += len;
}

static uint64_t name_length(const char *name)
{
	uint64_t n = 0;

	if (!name)
		return 0;
	while (n < PP_OBJECT_NAME_MAX && name[n])
		n++;
	return n;
}

/* One object: its record, its name, the padding, its program headers. */
static int list_one(struct loader_info *info, uint64_t size, void *data)
{
	struct object_list *l = data;
	struct pp_object head;

	if (size < LOADER_INFO_MIN)
		return 1; /* not the struct this was written for: stop */
	head.bias = info->addr;
	head.phdr = (uint64_t)(uintptr_t)info->phdr;
	head.phnum = info->phdr ? info->phnum : 0;
	head.name_len = name_length(info->name);
	put(l, &head, sizeof(head));
	put(l, info->name, head.name_len);
	put(l, 0, (8 - head.name_len % 8) % 8);
	put(l, info->phdr, head.phnum * PP_PHDR_SIZE);
	return 0;
}

/* Lists the loaded objects into buf (cap bytes) with the loader's own
 * dl_iterate_phdr at `iterate`. Returns the bytes the list takes: when that
 * is more than cap, buf holds only part of it and the caller retries with a
 * larger one; 0 when dl_iterate_phdr's structure is smaller than expected. */
__attribute__((visibility("default"))) uint64_t
pp_list_objects(uint64_t iterate, uint64_t buf, uint64_t cap)
{
	struct object_list l = { (uint8_t *)(uintptr_t)buf, cap, 0 };

	if (((iterate_fn)(uintptr_t)iterate)(list_one, &l) != 0)
		return 0;
	return l.used;
}
