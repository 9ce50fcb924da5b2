/** Opens a rollup's state database (DuckDB), gives `f` a function that runs one statement and returns its rows, and closes it. */
export async function withState<T>(state: string, f: (run: (sql: string) => Promise<unknown[][]>) => Promise<T>): Promise<T> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(state);
  const connection = await instance.connect();
  try {
    return await f(async (sql) => (await connection.runAndReadAll(sql)).getRows() as unknown[][]);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
