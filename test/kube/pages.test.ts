import type { ConfigurationOptions } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { type ListPage, type ListRequest, listAll, PAGE_SIZE } from '../../agent/kube/pages.ts';

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
