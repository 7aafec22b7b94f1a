/**
 * Where the daemon runs from, and its version: no native code, so that the
 * edge role loads none.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root, whether running from source (daemon/) or dist/daemon/. */
export const repoRoot = existsSync(join(here, '..', 'native')) ? resolve(here, '..') : resolve(here, '..', '..');

/** The package version (package.json), for the hello and the logs. */
export const VERSION: string = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
