/**
 * The node id rule, shared by the recorder (stamped on every entry) and the sink (part of object
 * names and `nodes/<node>.json`): it must not be able to escape a prefix, so no `/`, `..` or NUL.
 */
export const NODE_ID_PATTERN = '[A-Za-z0-9][A-Za-z0-9._-]{0,127}';
const NODE_ID_RE = new RegExp(`^${NODE_ID_PATTERN}$`);

export function isNodeId(node: string): boolean {
  return NODE_ID_RE.test(node);
}

export const NODE_ID_RULE = '1-128 letters, digits, ".", "_" or "-", starting with a letter or digit';
