DROP TABLE profiling_objections;
