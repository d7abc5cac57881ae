/**
 * Calico's log prefix placeholders. Felix renders its `logPrefix` (FelixConfiguration, default
 * `calico-packet`) per Log rule, replacing `%t` (tier), `%k` (kind short name), `%n` (name) and `%p`
 * (`namespace/name` for namespaced kinds, else the name), and appends `": "`. Set IPTABLES_LOG_PREFIX to
 * the same template and each line names the policy that logged it. iptables keeps only 29 characters of a
 * LOG prefix (nftables 127), so the rendered prefix is often cut, straight into the kernel's `IN=`.
 */

import type { Placeholder, PrefixTemplate } from '../prefix-template.ts';
import type { PolicyRef } from '../types.ts';

/** Felix's short kind names, and what the API calls each kind. */
const KINDS: Readonly<Record<string, { kind: string; namespaced: boolean }>> = {
  np: { kind: 'NetworkPolicy', namespaced: true },
  gnp: { kind: 'GlobalNetworkPolicy', namespaced: false },
  snp: { kind: 'StagedNetworkPolicy', namespaced: true },
  sgnp: { kind: 'StagedGlobalNetworkPolicy', namespaced: false },
  sknp: { kind: 'StagedKubernetesNetworkPolicy', namespaced: true },
  knp: { kind: 'KubernetesNetworkPolicy', namespaced: true },
  kcnp: { kind: 'KubernetesClusterNetworkPolicy', namespaced: false },
  pro: { kind: 'Profile', namespaced: false },
};

/** Characters of a rendered value: Kubernetes and Calico names, tiers and kinds, never a separator. */
const VALUE_CHAR = /[A-Za-z0-9._-]/;

interface Values {
  tier: string | null;
  kind: string | null;
  namespace: string | null;
  name: string | null;
}

/** The value of a placeholder starting at `from`: up to the first character no value holds. */
function valueEnd(text: string, from: number, end: number, slash: boolean): number {
  let i = from;
  while (i < end) {
    const c = text[i] as string;
    if (!(VALUE_CHAR.test(c) || (slash && c === '/'))) break;
    i++;
  }
  return i;
}

function assign(values: Values, placeholder: Placeholder, value: string): void {
  if (placeholder === 't') values.tier = value;
  else if (placeholder === 'k') values.kind = value;
  else if (placeholder === 'n') values.name = value;
  else {
    const slash = value.indexOf('/');
    if (slash < 0) values.name = value;
    else {
      values.namespace = value.slice(0, slash);
      values.name = value.slice(slash + 1);
    }
  }
}

/**
 * Reads the policy from text[from, end): what follows the core on a line up to where the kernel's fields
 * begin. A whole rendering ends in `:` (Calico's `": "`); the kernel cuts a long one anywhere, even inside
 * a name, which is then marked `cut`. Null when the text does not fit the template.
 */
export function readPolicy(
  template: PrefixTemplate,
  text: string,
  from: number,
  end: number,
): PolicyRef | null {
  const values: Values = { tier: null, kind: null, namespace: null, name: null };
  let at = from;
  /** The placeholder whose value ran into the cut, if the cut fell inside one. */
  let cutIn: Placeholder | null = null;
  let cut = false;
  for (const token of template.tokens) {
    if ('literal' in token) {
      if (text.startsWith(token.literal, at)) {
        at += token.literal.length;
        continue;
      }
      if (end - at < token.literal.length && token.literal.startsWith(text.slice(at, end))) {
        cut = true;
        break;
      }
      return null;
    }
    const valueTo = valueEnd(text, at, end, token.placeholder === 'p');
    if (valueTo > at) assign(values, token.placeholder, text.slice(at, valueTo));
    if (valueTo === end) {
      cut = true;
      if (valueTo > at) cutIn = token.placeholder;
      break;
    }
    if (valueTo === at) return null;
    at = valueTo;
  }
  if (!cut) {
    // Felix's ": ", whole or cut after the colon; nothing at all when the cut fell right after the text.
    if (at < end && text.charCodeAt(at) === COLON) at++;
    while (at < end && text.charCodeAt(at) === SPACE) at++;
    if (at < end) return null;
  }
  return policyOf(values, cutIn);
}

const COLON = 58;
const SPACE = 32;

function policyOf(values: Values, cutIn: Placeholder | null): PolicyRef {
  const known = values.kind === null || cutIn === 'k' ? undefined : KINDS[values.kind];
  let { namespace, name } = values;
  // A namespaced kind's `%p` cut before its slash holds part of the namespace, and no name.
  if (cutIn === 'p' && namespace === null && known?.namespaced !== false) name = null;
  if (known?.namespaced === false) namespace = null;
  return {
    tier: cutIn === 't' ? null : values.tier,
    kind: known?.kind ?? null,
    namespace,
    name,
    cut: name !== null && (cutIn === 'n' || cutIn === 'p'),
  };
}
