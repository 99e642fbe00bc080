# The outbox relay against a broker that refuses records for good, and
# messages over the size limit (issue 13, items 1 and 2). Both run on the
# dev broker and, as *_real, on Apache Kafka.
saga_stack_test(it_refused_record test_refused_record.sh)
saga_stack_test(it_oversized_messages test_oversized_messages.sh)
# Apache Kafka only (a broker that creates no topics); on the dev broker it
# skips (77), its real twin runs it.
saga_stack_test(it_missing_topic test_missing_topic.sh)
set_tests_properties(it_missing_topic PROPERTIES SKIP_RETURN_CODE 77)
