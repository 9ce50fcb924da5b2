// A module loader hook for tests: '@google-cloud/bigquery' resolves as if it were not installed.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
export async function resolve(specifier, context, next) {
  if (specifier === '@google-cloud/bigquery' || specifier.startsWith('@google-cloud/bigquery/')) {
    const err = new Error("Cannot find package '" + specifier + "' imported from " + context.parentURL);
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}`),
);
