#!/usr/bin/env bun
// The npm package's command, `page-primer doctor|inspect|footprint|bench`
// (`bunx page-primer doctor`): cli.ts compiled into dist/ by `npm run build`.
// Deno users run `deno run --allow-ffi jsr:@x/page-primer/cli doctor`.
import process from "node:process";
import { main } from "../dist/cli.js";

process.exitCode = await main(process.argv.slice(2));
