#!/usr/bin/env node
// The `msgchannel` command (package.json "bin"): bundled to dist/cli.js by scripts/build.mjs.
import { main } from './program.js';

void main();
