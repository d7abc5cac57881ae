import { type ConfigurationOptions, Observable, ResponseContext } from '@kubernetes/client-node';

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

/** A list page as the API server writes it: `continue`, where the client's models say `_continue`. */
interface SentPage {
  items?: unknown[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/**
 * The same list call, its pages' items as the API server sent them (plain JSON, timestamps as RFC 3339
 * text, as watch events carry them). The request is still the client's, with its credentials, middleware
 * and errors; a successful answer is parsed here, and the client deserialises it without its items. Its
 * model objects are a second copy of every field of every item (a Date for each timestamp), alive with the
 * parsed page until the page is converted: with them, listing 667 small nodes left 1.7 MiB more RSS.
 */
export function itemsAsSent(call: ListCall): ListCall {
  return async (request, options) => {
    let sent: SentPage | undefined;
    const take = async (response: ResponseContext): Promise<ResponseContext> => {
      if (response.httpStatusCode < 200 || response.httpStatusCode > 299) return response;
      sent = JSON.parse(await response.body.text()) as SentPage;
      const rest = JSON.stringify({ ...sent, items: [] });
      return new ResponseContext(response.httpStatusCode, response.headers, {
        text: () => Promise.resolve(rest),
        binary: () => Promise.resolve(Buffer.from(rest)),
      });
    };
    const page = await call(request, {
      ...options,
      middleware: [
        ...(options.middleware ?? []),
        { pre: (context) => new Observable(Promise.resolve(context)), post: (r) => new Observable(take(r)) },
      ],
      middlewareMergeStrategy: options.middlewareMergeStrategy ?? 'append',
    });
    // A call that made no request through the client (none does in the agent) hands over its own page.
    if (sent === undefined) return page;
    const { resourceVersion, continue: next } = sent.metadata ?? {};
    return { items: sent.items ?? [], metadata: { resourceVersion, _continue: next } };
  };
}

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
