export * from '../../sink/consumer/run-rollup.js';
