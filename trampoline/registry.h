/* The process-wide record of remapped regions. Every JS isolate of the
 * process (the main thread and each Worker) loads the same trampoline, so
 * the record kept here is one per process: a region remapped in a Worker
 * can be restored from any thread. The callers keep it as length-prefixed
 * text under a lock word holding the owner's thread id. */
#ifndef PP_REGISTRY_H
#define PP_REGISTRY_H

#include <stdint.h>

#define PP_REGISTRY_SIZE (1UL << 20)

static uint8_t registry[PP_REGISTRY_SIZE];
static int32_t registry_owner; /* tid of the holder, 0 when free */

__attribute__((visibility("default"))) uint64_t pp_registry(void)
{
	return (uint64_t)(uintptr_t)registry;
}

__attribute__((visibility("default"))) uint64_t pp_registry_size(void)
{
	return PP_REGISTRY_SIZE;
}

/* Takes the lock for the calling thread, sleeping 1 ms between tries, for
 * at most `timeout_ms`: 0 when taken, else the holder's thread id. */
__attribute__((visibility("default"))) uint64_t pp_lock(uint64_t timeout_ms)
{
	struct { long sec, nsec; } ms = { 0, 1000000 };
	long tid = pp_syscall6(PP_SYS_GETTID, 0, 0, 0, 0, 0, 0);

	for (uint64_t waited = 0;; waited++) {
		int32_t free_word = 0;

		if (__atomic_compare_exchange_n(&registry_owner, &free_word,
						(int32_t)tid, 0,
						__ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return 0;
		if (waited >= timeout_ms)
			return (uint64_t)(uint32_t)free_word;
		pp_syscall6(PP_SYS_NANOSLEEP, (long)&ms, 0, 0, 0, 0, 0);
	}
}

/* Releases the lock if the calling thread holds it. */
__attribute__((visibility("default"))) void pp_unlock(void)
{
	int32_t expected =
		(int32_t)pp_syscall6(PP_SYS_GETTID, 0, 0, 0, 0, 0, 0);

	__atomic_compare_exchange_n(&registry_owner, &expected, 0, 0,
				    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

#endif
