/**
 * `doctor [--json]`: checks what `run` would do with the same environment (log source, prefix, API access,
 * permissions, pod index) and reports it. Exit 1 when something keeps events from being posted.
 */

import { loadConfig, requireOneSource } from '../config.ts';
import { checkApi } from '../tools/doctor/api-check.ts';
import { checkFelix } from '../tools/doctor/felix-check.ts';
import { checkPods } from '../tools/doctor/pods-check.ts';
import { buildReport, renderJson, renderText } from '../tools/doctor/report.ts';
import { checkSource } from '../tools/doctor/source-check.ts';
import { parseCommandArgs, UsageError } from './args.ts';

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } });
  if (positionals.length > 0) {
    throw new UsageError(
      'doctor takes only --json: it checks the configuration of the environment variables',
    );
  }
  const config = loadConfig(process.env, { needsSource: true });
  const source = requireOneSource(config);
  // The source and the API are independent: an unreachable API costs no time on top of reading the log.
  const [sourceReport, api] = await Promise.all([checkSource(config, source, Date.now()), checkApi(config)]);
  const [pods, felix] =
    api.kubeConfig === null
      ? [null, null]
      : await Promise.all([
          checkPods(api.kubeConfig, config.podIdentifierLabel, sourceReport.addresses),
          checkFelix(api.kubeConfig),
        ]);
  const report = buildReport(sourceReport, api.report, pods, felix);
  process.stdout.write(values.json === true ? renderJson(report) : renderText(report));
  return report.exitCode;
}
