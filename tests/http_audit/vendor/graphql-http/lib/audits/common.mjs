/**
 *
 * audit/common
 *
 */
export {};
