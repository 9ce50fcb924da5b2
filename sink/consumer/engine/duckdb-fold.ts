/**
 * Registers `metering_fold` on a DuckDB connection: contract v2's machine (timeline-fold.ts) as a
 * JavaScript scalar function of one resource's events (LIST of STRUCT) returning its intervals and
 * anomalies. DuckDB runs the callback on the JS thread, one chunk of resources at a time.
 */
import type { DuckDBConnection, DuckDBListVector, DuckDBStructVector, DuckDBType, DuckDBValue } from '@duckdb/node-api';
import { foldTimeline, type FoldEvent } from '../timeline-fold.js';
import { FOLD_ANOMALY_FIELDS, FOLD_EVENT_FIELDS, FOLD_INTERVAL_FIELDS, toSqlFold, type SqlFieldType } from '../../sql/fold-udf.js';
import type { DuckDbApi } from './duckdb-module.js';

export function registerMeteringFold(duck: DuckDbApi, connection: DuckDBConnection): void {
  const typeOf: Record<SqlFieldType, DuckDBType> = { string: duck.VARCHAR, float: duck.DOUBLE, bool: duck.BOOLEAN };
  const struct = (fields: readonly (readonly [string, SqlFieldType])[]): DuckDBType => duck.STRUCT(Object.fromEntries(fields.map(([n, t]) => [n, typeOf[t]])));
  const eventType = struct(FOLD_EVENT_FIELDS);
  const resultType = duck.STRUCT({ intervals: duck.LIST(struct(FOLD_INTERVAL_FIELDS)), anomalies: duck.LIST(struct(FOLD_ANOMALY_FIELDS)) });
  const names = FOLD_EVENT_FIELDS.map(([n]) => n);
  const row = (o: object): DuckDBValue => duck.structValue(o as Record<string, DuckDBValue>);
  connection.registerScalarFunction(
    duck.DuckDBScalarFunction.create({
      name: 'metering_fold',
      returnType: resultType,
      parameterTypes: [duck.LIST(eventType)],
      mainFunction: (_info, input, output) => {
        const lists = input.getColumnVector(0) as DuckDBListVector;
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
          const folded = toSqlFold(foldTimeline(events));
          output.setItem(r, duck.structValue({ intervals: duck.listValue(folded.intervals.map(row)), anomalies: duck.listValue(folded.anomalies.map(row)) }));
        }
        output.flush();
      },
    }),
  );
}
