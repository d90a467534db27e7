#!/bin/bash
# start broker + connect; writes pids; prints timings
D=/tmp/kafka-scout
JOPTS="-Xms128m -Xmx512m -XX:+UseG1GC -XX:MaxMetaspaceSize=256m -Djava.awt.headless=true -Dlog4j2.configurationFile=file:$D/conf/log4j2.properties"
t0=$(date +%s.%N)
nohup java $JOPTS -cp "$D/lib/kafka/*" kafka.Kafka $D/conf/server.properties > $D/logs/broker.log 2>&1 &
echo $! > $D/broker.pid
until (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null && grep -q "Kafka Server started" $D/logs/broker.log; do sleep 0.2; done
t1=$(date +%s.%N); echo "broker up $(echo "$t1-$t0"|bc) s"
nohup java $JOPTS -cp "$D/lib/kafka/*" org.apache.kafka.connect.cli.ConnectDistributed $D/conf/connect-distributed.properties > $D/logs/connect.log 2>&1 &
echo $! > $D/connect.pid
until curl -sf http://127.0.0.1:8083/connector-plugins 2>/dev/null | grep -q JdbcSinkConnector; do sleep 0.2; done
t2=$(date +%s.%N); echo "connect plugins listed $(echo "$t2-$t1"|bc) s; total $(echo "$t2-$t0"|bc) s"
