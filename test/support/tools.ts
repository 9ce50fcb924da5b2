import * as fs from 'node:fs';

/**
 * Is a system tool a test needs installed (promtool, chromium)? `.ci/run` installs them with apt;
 * there (METERING_REQUIRE_TOOLS=1) a missing tool fails the test instead of skipping it.
 */
export function haveTool(file: string, debianPackage: string): boolean {
  if (fs.existsSync(file)) return true;
  if (process.env.METERING_REQUIRE_TOOLS === '1') throw new Error(`${file} is missing: apt-get install -y ${debianPackage}`);
  console.warn(`skipping: ${file} is not installed (apt-get install -y ${debianPackage})`);
  return false;
}
