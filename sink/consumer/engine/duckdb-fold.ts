/**
 * Registers `metering_fold` on a DuckDB connection: contract v2's machine (timeline-fold.ts) as a
 * JavaScript scalar function of a resource's state (what an earlier run left, or a fresh one) and
 * its new events (LIST of STRUCT), returning its intervals, anomalies and the state to keep, as one
 * flat list of rows (fold-udf.ts, FOLD_ROW_FIELDS).
 * DuckDB runs the callback on the JS thread, one chunk of resources at a time.
 */
import type { DuckDBListVector, DuckDBStructValue, DuckDBStructVector, DuckDBType, DuckDBValue, DuckDBConnection } from '@duckdb/node-api';
import type { FoldEvent } from '../timeline-fold.js';
import { FOLD_EVENT_FIELDS, FOLD_INTERVAL_FIELDS, FOLD_ROW_FIELDS, FOLD_ROW_NAMES, FOLD_STATE_FIELDS, meteringFold, type SqlFieldType, type SqlFoldState } from '../../sql/fold-udf.js';
import type { DuckDbApi } from './duckdb-module.js';

type Fields = readonly (readonly [string, SqlFieldType])[];

export function registerMeteringFold(duck: DuckDbApi, connection: DuckDBConnection): void {
  const typeOf: Record<SqlFieldType, DuckDBType> = { string: duck.VARCHAR, float: duck.DOUBLE, bool: duck.BOOLEAN };
  const struct = (fields: Fields, extra: Record<string, DuckDBType> = {}): DuckDBType => duck.STRUCT({ ...extra, ...Object.fromEntries(fields.map(([n, t]) => [n, typeOf[t]])) });
  const intervalType = struct(FOLD_INTERVAL_FIELDS);
  const stateType = struct(FOLD_STATE_FIELDS, { open: intervalType });
  const eventType = struct(FOLD_EVENT_FIELDS);
  const resultType = duck.LIST(struct(FOLD_ROW_FIELDS));
  const names = FOLD_EVENT_FIELDS.map(([n]) => n);
  const row = (o: object | null): DuckDBValue => (o === null ? null : duck.structValue(o as Record<string, DuckDBValue>));
  const plain = (v: DuckDBValue): unknown => (v instanceof duck.DuckDBStructValue ? Object.fromEntries(Object.entries(v.entries).map(([k, x]) => [k, plain(x)])) : v);
  connection.registerScalarFunction(
    duck.DuckDBScalarFunction.create({
      name: 'metering_fold',
      returnType: resultType,
      parameterTypes: [stateType, duck.LIST(eventType)],
      mainFunction: (_info, input, output) => {
        const states = input.getColumnVector(0) as DuckDBStructVector;
        const lists = input.getColumnVector(1) as DuckDBListVector;
        // Read the flat child columns directly: no per-row struct objects from the binding.
        const structs = lists.childVector as DuckDBStructVector;
        const columns = names.map((_, i) => structs.entryVectorAt(i));
        for (let r = 0; r < input.rowCount; r++) {
          const offset = lists.getEntryOffset(r);
          const length = lists.getEntryLength(r);
          const events: FoldEvent[] = new Array<FoldEvent>(length);
          for (let k = 0; k < length; k++) {
            const e: Record<string, unknown> = {};
            for (let c = 0; c < names.length; c++) e[names[c]!] = columns[c]!.getItem(offset + k);
            events[k] = e as unknown as FoldEvent;
          }
          const state = states.getItem(r) as DuckDBStructValue | null;
          const folded = meteringFold(state === null ? null : (plain(state) as SqlFoldState), events, FOLD_ROW_NAMES);
          output.setItem(r, duck.listValue(folded.map(row)));
        }
        output.flush();
      },
    }),
  );
}
