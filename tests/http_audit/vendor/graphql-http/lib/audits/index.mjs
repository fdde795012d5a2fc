export * from './common.mjs';
export * from './server.mjs';
export * from './render.mjs';
