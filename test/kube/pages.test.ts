import {
  type ConfigurationOptions,
  Observable,
  type RequestContext,
  ResponseContext,
} from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  itemsAsSent,
  type ListCall,
  type ListPage,
  type ListRequest,
  listAll,
  PAGE_SIZE,
} from '../../agent/kube/pages.ts';

/** A list call over `pages`, answering page i for continue token `t<i>`, recording what it was asked. */
function fakeList(pages: ListPage[]) {
  const asked: { request: ListRequest; options: ConfigurationOptions }[] = [];
  const list = async (request: ListRequest, options: ConfigurationOptions): Promise<ListPage> => {
    asked.push({ request, options });
    const index = request._continue === undefined ? 0 : Number(request._continue.slice(1));
    const page = pages[index];
    if (page === undefined) throw new Error(`no page ${index}`);
    return page;
  };
  return { list, asked };
}

const options: ConfigurationOptions = { middleware: [] };

describe('listAll', () => {
  it('follows continue tokens through every page, converting items and skipping nulls', async () => {
    const { list, asked } = fakeList([
      { items: [1, 2, -1], metadata: { _continue: 't1', resourceVersion: '10' } },
      { items: [3], metadata: { _continue: 't2', resourceVersion: '10' } },
      { items: [-4, 5], metadata: { resourceVersion: '10' } },
    ]);
    const listed = await listAll(list, (item) => (typeof item === 'number' && item > 0 ? item * 10 : null), {
      options,
      fieldSelector: 'status.phase=Running',
      pageSize: 3,
    });
    expect(listed).toEqual({ items: [10, 20, 30, 50], resourceVersion: '10', pages: 3 });
    expect(asked.map((call) => call.request)).toEqual([
      { limit: 3, fieldSelector: 'status.phase=Running', _continue: undefined },
      { limit: 3, fieldSelector: 'status.phase=Running', _continue: 't1' },
      { limit: 3, fieldSelector: 'status.phase=Running', _continue: 't2' },
    ]);
    expect(asked.every((call) => call.options === options)).toBe(true);
  });

  it('asks PAGE_SIZE by default and answers an empty resourceVersion when the server gives none', async () => {
    const { list, asked } = fakeList([{ items: [] }]);
    expect(await listAll(list, () => 1, { options })).toEqual({ items: [], resourceVersion: '', pages: 1 });
    expect(asked[0]?.request.limit).toBe(PAGE_SIZE);
  });

  it('fails as the failing page does, with nothing half-listed', async () => {
    const { list } = fakeList([{ items: [1], metadata: { _continue: 't7' } }]);
    await expect(listAll(list, (item) => item, { options })).rejects.toThrow('no page 7');
  });
});

/**
 * A list call as the client makes it: the answer goes through the options' middleware (post), then the
 * client deserialises what comes out of it; `typed` is what it returns, `read` what it was left to read.
 */
function clientCall(status: number, body: string, typed: ListPage) {
  const seen = { read: '' };
  const call: ListCall = async (_request, callOptions) => {
    let response = new ResponseContext(
      status,
      { 'content-type': 'application/json' },
      {
        text: () => Promise.resolve(body),
        binary: () => Promise.resolve(Buffer.from(body)),
      },
    );
    for (const middleware of callOptions.middleware ?? [])
      response = await middleware.post(response).toPromise();
    seen.read = await response.body.text();
    if (status !== 200) throw new Error(`HTTP ${status}`);
    return typed;
  };
  return { call, seen };
}

describe('itemsAsSent', () => {
  const item = {
    metadata: { name: 'a', creationTimestamp: '2024-05-01T10:00:00Z' },
    status: { phase: 'Running' },
  };

  it('hands over the items as the server sent them, and leaves the client a page without them', async () => {
    const body = JSON.stringify({
      kind: 'PodList',
      metadata: { resourceVersion: '7', continue: 't1' },
      items: [item],
    });
    const { call, seen } = clientCall(200, body, { items: [{ typed: true }] });
    const page = await itemsAsSent(call)({ limit: 1 }, options);
    expect(page).toEqual({ items: [item], metadata: { resourceVersion: '7', _continue: 't1' } });
    expect(JSON.parse(seen.read)).toEqual({
      kind: 'PodList',
      metadata: { resourceVersion: '7', continue: 't1' },
      items: [],
    });
  });

  it("keeps the caller's middleware, and leaves a failed answer to the client untouched", async () => {
    const body = JSON.stringify({ kind: 'Status', code: 410 });
    const { call, seen } = clientCall(410, body, { items: [] });
    const asked: ConfigurationOptions[] = [];
    const spy: ListCall = (request, callOptions) => {
      asked.push(callOptions);
      return call(request, callOptions);
    };
    const mine = {
      pre: (context: RequestContext) => new Observable(Promise.resolve(context)),
      post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
    };
    await expect(
      itemsAsSent(spy)({ limit: 1 }, { middleware: [mine], middlewareMergeStrategy: 'append' }),
    ).rejects.toThrow('HTTP 410');
    expect(seen.read).toBe(body);
    expect(asked[0]?.middleware?.[0]).toBe(mine);
    expect(asked[0]?.middleware).toHaveLength(2);
  });

  it("lists every page through listAll with the last page's resourceVersion", async () => {
    const pages = [
      JSON.stringify({ metadata: { resourceVersion: '9', continue: 't1' }, items: [item] }),
      JSON.stringify({ metadata: { resourceVersion: '9' }, items: [item, item] }),
    ];
    const call: ListCall = (request, callOptions) =>
      clientCall(200, pages[request._continue === undefined ? 0 : 1]!, { items: [] }).call(
        request,
        callOptions,
      );
    const listed = await listAll(itemsAsSent(call), (object) => object, { options });
    expect(listed).toEqual({ items: [item, item, item], resourceVersion: '9', pages: 2 });
  });
});
