/**
 * The requests a RequestChannel has written and not settled (outstanding), by id. Ids are handed
 * out in order and most replies come back soon, so an entry lives in the ring slot its id's low
 * bits pick: put and take are an array access each, where a Map hashes and rehashes on every
 * request (bench/README.md has the measurement). The ring starts at 16 slots and doubles, up to
 * `maxSlots`, while the ids in flight span more than it holds; past that, an entry whose slot is
 * wanted again (a request outstanding while `maxSlots` newer ones came and went) moves to a Map.
 */
export class OutstandingRequests<T extends { readonly id: number }> {
  #slots: (T | undefined)[] = new Array<T | undefined>(16).fill(undefined);
  #mask = 15;
  readonly #maxSlots: number;
  readonly #overflow = new Map<number, T>();
  #size = 0;

  /** `maxSlots`: the ring's largest size, rounded up to a power of two. */
  constructor(maxSlots: number) {
    let n = 16;
    while (n < maxSlots) n *= 2;
    this.#maxSlots = n;
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  /** Add an entry (its id is not held yet). */
  put(entry: T): void {
    for (;;) {
      const i = entry.id & this.#mask; // ToInt32 keeps the low bits of any id up to 2^53
      const old = this.#slots[i];
      if (old === undefined) {
        this.#slots[i] = entry;
        break;
      }
      if (this.#slots.length < this.#maxSlots) {
        this.#grow();
        continue;
      }
      this.#overflow.set(old.id, old);
      this.#slots[i] = entry;
      break;
    }
    this.#size++;
  }

  /** Remove and return the entry with this id, if held. */
  take(id: number): T | undefined {
    const i = id & this.#mask;
    const entry = this.#slots[i];
    if (entry !== undefined && entry.id === id) {
      this.#slots[i] = undefined;
      this.#size--;
      return entry;
    }
    if (this.#overflow.size === 0) return undefined;
    const old = this.#overflow.get(id);
    if (old !== undefined) {
      this.#overflow.delete(id);
      this.#size--;
    }
    return old;
  }

  /** Every entry, as a new array (callers may put and take while they walk it). */
  entries(): T[] {
    const all: T[] = [...this.#overflow.values()];
    for (const entry of this.#slots) if (entry !== undefined) all.push(entry);
    return all;
  }

  clear(): void {
    this.#slots.fill(undefined);
    this.#overflow.clear();
    this.#size = 0;
  }

  /** Double the ring: entries apart in the small one stay apart (their ids differ in the low bits already). */
  #grow(): void {
    const slots = new Array<T | undefined>(this.#slots.length * 2).fill(undefined);
    const mask = slots.length - 1;
    for (const entry of this.#slots) if (entry !== undefined) slots[entry.id & mask] = entry;
    this.#slots = slots;
    this.#mask = mask;
  }
}
