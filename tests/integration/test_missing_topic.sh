#!/usr/bin/env bash
# A command for a topic that does not exist, on a broker that creates no
# topics (issue 13, item 1): librdkafka waits for the topic
# (topic.metadata.propagation.max.ms, 2 s here), sagad sends the row alone a
# few times, then parks it: the step fails with COMMAND_REJECTED naming the
# topic, the saga compensates, nothing else is sent twice or held up, no
# log storm, sagad runs on. Apache Kafka only (KAFKA_AUTO_CREATE=false): the
# dev broker creates every topic it is asked for, so there it skips (77).
. "$(dirname "$0")/../e2e/e2e_lib.sh"
[ "${KAFKA:-}" = real ] || { echo "SKIP: the dev broker creates every topic asked for"; exit 77; }
e2e_env
cp "$(dirname "$0")"/sagas/ghost_topic.json "$DIR/sagas/"
export KAFKA_AUTO_CREATE=false
export SAGAD_ARGS="${SAGAD_ARGS:-} -X topic.metadata.propagation.max.ms=2000"
stack_up

publish_starts okA 10
publish_saga ghost-1 ghost_topic c-1 sku-1 100
publish_starts okB 10

check "the ghost saga is compensated" wait_status ghost-1 compensated 120
check "its ghost step failed with COMMAND_REJECTED naming the topic" \
  eq "$(saga_sql "SELECT status || '/' || error_code || '/' || (error_message LIKE '%ghost.commands%') FROM steps WHERE saga_id='ghost-1' AND name='ghost'")" \
  "failed/COMMAND_REJECTED/1"
check "its order was created and cancelled" in_history ghost-1 \
  step.succeeded:create_order step.failed:ghost saga.compensating compensation.succeeded:create_order saga.compensated
check "the command is parked with its reason" \
  eq "$(saga_sql "SELECT count(*) FROM outbox_parked WHERE topic='ghost.commands' AND key='ghost-1' AND outcome='step_failed'")" 1
check "the 20 sagas around it complete" \
  wait_count "SELECT count(*) FROM sagas WHERE (id LIKE 'okA-%' OR id LIKE 'okB-%') AND status='completed'" 20 90
exactly_once okA 10 1000
exactly_once okB 10 1000
check "the topic was not created" bash -c "! kcat -b '$BOOTSTRAP' -L -t ghost.commands -m 5 2>/dev/null | grep -q 'topic \"ghost.commands\" with [1-9]'"
fails=$(grep -c "ghost.commands" "$DIR/sagad.log" || true)
check "the failure is logged a few times, not thousands ($fails)" test "$fails" -lt 30
check "the outbox is drained" wait_count "SELECT count(*) FROM outbox" 0 30
check "sagad is still running" kill -0 "$SAGAD_PID"
publish_starts later 5
check "later sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'later-%' AND status='completed'" 5 60
check "sagactl audit passes" audit_passes
finish
