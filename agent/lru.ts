import { LRUCache } from 'lru-cache';

/**
 * An LRUCache of at most `entries` entries whose memory grows with what it holds. Given `max`, lru-cache
 * allocates and fills its arrays for every entry at construction (about 22 bytes an entry: 1 MiB at 50,000),
 * and the agent keeps a dozen such caches that stay empty on a quiet node. Bounded by size, one unit an
 * entry, it evicts the same least recently used entries, with the same dispose reasons.
 */
export function boundedLru<K extends {}, V extends {}>(
  entries: number,
  options: Pick<LRUCache.OptionsBase<K, V, unknown>, 'ttl' | 'ttlResolution' | 'perf' | 'dispose'> = {},
): LRUCache<K, V> {
  return new LRUCache<K, V>({ ...options, maxSize: entries, sizeCalculation: () => 1 });
}
