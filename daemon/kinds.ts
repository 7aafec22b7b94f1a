/**
 * The engine's kinds, and the native status codes the daemon tests for:
 * from the generated layout only, with no native code, so that the edge role
 * (which has no engine) can use them.
 */
import type { KindInfo } from '../protocol/messages.js';
import { NATIVE_LAYOUT } from '../protocol/layout.js';

/** The engine's kinds by name and by number. */
export class KindTable {
  /** Kind name by number (0 to 31), undefined for numbers not declared. */
  readonly names: readonly (string | undefined)[];
  readonly byName: ReadonlyMap<string, number>;
  /** Bit k set for every declared kind k. */
  readonly mask: number;
  constructor(readonly list: readonly KindInfo[]) {
    const names: (string | undefined)[] = new Array(NATIVE_LAYOUT.kind_max + 1).fill(undefined);
    for (const k of list) names[k.number] = k.name;
    this.names = names;
    this.byName = new Map(list.map((k) => [k.name, k.number]));
    this.mask = list.reduce((m, k) => (m | (1 << k.number)) >>> 0, 0);
  }
  /** The name of kind number `n` ("unknown" if the engine did not declare it). */
  name(n: number): string {
    return this.names[n] ?? 'unknown';
  }
}

/** Native statuses the daemon branches on (evb_plugin.h `evb_status`). */
export const NATIVE_STATUS = {
  busy: NATIVE_LAYOUT.statuses.EVB_STATUS_BUSY,
  badState: NATIVE_LAYOUT.statuses.EVB_STATUS_BAD_STATE,
} as const;
