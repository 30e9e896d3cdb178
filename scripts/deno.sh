#!/bin/sh
# For deno.json's tasks: runs the deno that runs the task (this shell's
# parent) with the arguments given. A task that says "deno" directly would
# run the npm package "deno" of package.json's devDependencies instead, which
# fails outside node_modules ("Cannot find module
# '@deno/linux-x64-glibc/package.json'").
exec "$(readlink /proc/$PPID/exe)" "$@"
