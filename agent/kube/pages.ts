import type { ConfigurationOptions } from '@kubernetes/client-node';

/** What a list call is asked for. */
export interface ListRequest {
  limit: number;
  _continue?: string;
  fieldSelector?: string;
}

/** One page of a typed CoreV1Api list call (V1PodList, V1NodeList, ...). */
export interface ListPage {
  items: readonly unknown[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

/**
 * A typed list call, e.g. `(request, options) => core.listNode(request, options)`. `options` carries the
 * caller's request signal, so a time limit or a stop can cancel a page in flight.
 */
export type ListCall = (request: ListRequest, options: ConfigurationOptions) => Promise<ListPage>;

/** Items per list page; doctor lists with the same size as the agent, so it loads the API server alike. */
export const PAGE_SIZE = 500;

export interface Listed<T> {
  items: T[];
  /** The resourceVersion of the list as a whole (its last page), from which a watch resumes. */
  resourceVersion: string;
  pages: number;
}

export interface ListAllOptions {
  /** Per-call options, applied to every page: their signal is made afresh for each request. */
  options: ConfigurationOptions;
  fieldSelector?: string;
  pageSize?: number;
}

/**
 * Every page of a list, following continue tokens, each item through `convert` (null skips it). Converted
 * page by page so that only one page of full API objects is alive at a time.
 */
export async function listAll<T>(
  list: ListCall,
  convert: (object: unknown) => T | null,
  { options, fieldSelector, pageSize = PAGE_SIZE }: ListAllOptions,
): Promise<Listed<T>> {
  const items: T[] = [];
  let page: ListPage | undefined;
  let pages = 0;
  do {
    page = await list({ limit: pageSize, fieldSelector, _continue: page?.metadata?._continue }, options);
    pages++;
    for (const object of page.items) {
      const item = convert(object);
      if (item !== null) items.push(item);
    }
  } while (page.metadata?._continue);
  return { items, resourceVersion: page.metadata?.resourceVersion ?? '', pages };
}
