/**
 * `doctor [--json]`: checks what `run` would do with the same environment (log source, prefix, API access,
 * permissions, pod index) and reports it, with the running agent's pod lookups (POD_WATCH_SCOPE=node).
 * Exit 1 when something keeps events from being posted.
 */

import { loadConfig, requireOneSource } from '../config.ts';
import { checkApi } from '../tools/doctor/api-check.ts';
import { checkFelix } from '../tools/doctor/felix-check.ts';
import { checkLookups } from '../tools/doctor/lookups-check.ts';
import { checkPods } from '../tools/doctor/pods-check.ts';
import { buildReport, renderJson, renderText } from '../tools/doctor/report.ts';
import { checkSource } from '../tools/doctor/source-check.ts';
import type { WatchReport } from '../tools/doctor/types.ts';
import { parseCommandArgs, UsageError } from './args.ts';

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } });
  if (positionals.length > 0) {
    throw new UsageError(
      'doctor takes only --json: it checks the configuration of the environment variables',
    );
  }
  // watchesPods: a configuration `run` refuses (POD_WATCH_SCOPE=node without NODE_NAME) is refused here too.
  const config = loadConfig(process.env, { needsSource: true, watchesPods: true });
  const source = requireOneSource(config);
  const watch: WatchReport = {
    scope: config.podWatchScope,
    nodeName: config.podWatchScope === 'node' ? config.nodeName : null,
  };
  // The source, the API and the agent's metrics are independent: none waits for another to time out.
  const [sourceReport, api, lookups] = await Promise.all([
    checkSource(config, source, Date.now()),
    checkApi(config),
    checkLookups(watch, config.metricsPort),
  ]);
  const [pods, felix] =
    api.kubeConfig === null
      ? [null, null]
      : await Promise.all([
          checkPods(
            api.kubeConfig,
            { podIdentifierLabel: config.podIdentifierLabel, watch },
            sourceReport.addresses,
          ),
          checkFelix(api.kubeConfig),
        ]);
  const report = buildReport({ source: sourceReport, api: api.report, pods, felix, watch, lookups });
  process.stdout.write(values.json === true ? renderJson(report) : renderText(report));
  return report.exitCode;
}
