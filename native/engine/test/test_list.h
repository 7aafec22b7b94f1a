/* Every test, by name: X(name) for a function TEST(name) in one of the
 * test_<feature>.c files. */
#define EE_TESTS(X)           \
  X(register_unregister)      \
  X(unregister_quiescence)    \
  X(udp_source)               \
  X(udp_bind_errors)          \
  X(udp_kernel_drops)         \
  X(tick_rate)                \
  X(generator_subjects)       \
  X(fault_injection)          \
  X(plugin_table)             \
  X(plugin_engine)            \
  X(plugin_config_errors)     \
  X(errors)
