#!/usr/bin/env node
// The `msgchannel` command: dist/cli.js (package.json "bin") imports this module.
import { main } from './program.js';

void main();
