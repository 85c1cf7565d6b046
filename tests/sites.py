"""Every place a BPMN file can hold an expression SpiffWorkflow evaluates, as a process with
``{expr}`` where the expression goes and a harmless expression for that place.

Shared by the unit test that walks SpiffWorkflow's source and the integration test that puts
a payload at each place on both databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="defs" targetNamespace="http://bankflow.test/sites">
"""
PROCESS = """  <bpmn:process id="{key}" name="Site {key}" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane" name="clerks"><bpmn:flowNodeRef>site</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f_in" sourceRef="start" targetRef="site"/>
{body}
    <bpmn:sequenceFlow id="f_out" sourceRef="site" targetRef="end"/>
    <bpmn:endEvent id="end" name="End"/>
  </bpmn:process>
"""
TAIL = "</bpmn:definitions>\n"


@dataclass(frozen=True)
class Site:
    """``body`` is the element with id ``site``; ``{expr}`` marks the expression (text) and
    ``{attr}`` the same as a quoted attribute value."""

    name: str
    body: str
    harmless: str
    before: str = ""  # definitions-level elements (messages, correlation properties)
    # How the site is reached at run time: "start" (starting reaches it), "task" (completing
    # the waiting task does), "message" (correlating a message does), or "never" (bankflow
    # never evaluates it: deploy checks it all the same).
    reached_by: str = "start"
    # A rule validate reports on the site's element whatever the expression, because
    # bankflow refuses the element itself (the expression is still compiled and refused).
    refused: str | None = None

    def bpmn(self, expression: str, *, key: str | None = None) -> str:
        values = {"expr": escape(expression), "attr": quoteattr(expression)}
        body = self.body.format(**values)
        before = self.before.format(**values)
        return HEAD + before + PROCESS.format(key=key or self.key, body=body) + TAIL

    @property
    def key(self) -> str:
        return f"site_{self.name.replace('-', '_')}"


SITES: tuple[Site, ...] = (
    Site(
        "gateway-condition",
        """    <bpmn:exclusiveGateway id="site" name="Decide" default="f_default"/>
    <bpmn:sequenceFlow id="f_cond" sourceRef="site" targetRef="end2">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{expr}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_default" sourceRef="site" targetRef="end2"/>
    <bpmn:endEvent id="end2" name="End 2"/>""",
        "amount > 1",
    ),
    Site(
        "script",
        """    <bpmn:scriptTask id="site" name="Compute" scriptFormat="python">
      <bpmn:script>{expr}</bpmn:script>
    </bpmn:scriptTask>""",
        "x = 1",
    ),
    Site(
        "pre-script",
        """    <bpmn:userTask id="site" name="Review">
      <bpmn:extensionElements>
        <spiffworkflow:preScript>{expr}</spiffworkflow:preScript>
      </bpmn:extensionElements>
    </bpmn:userTask>""",
        "x = 1",
    ),
    Site(
        "post-script",
        """    <bpmn:userTask id="site" name="Review">
      <bpmn:extensionElements>
        <spiffworkflow:postScript>{expr}</spiffworkflow:postScript>
      </bpmn:extensionElements>
    </bpmn:userTask>""",
        "x = 1",
        reached_by="task",
    ),
    Site(
        "multi-instance-cardinality",
        """    <bpmn:scriptTask id="site" name="Each" scriptFormat="python">
      <bpmn:multiInstanceLoopCharacteristics isSequential="true">
        <bpmn:loopCardinality>{expr}</bpmn:loopCardinality>
      </bpmn:multiInstanceLoopCharacteristics>
      <bpmn:script>y = 2</bpmn:script>
    </bpmn:scriptTask>""",
        "2",
    ),
    Site(
        "multi-instance-completion",
        """    <bpmn:scriptTask id="site" name="Each" scriptFormat="python">
      <bpmn:multiInstanceLoopCharacteristics isSequential="true">
        <bpmn:loopCardinality>2</bpmn:loopCardinality>
        <bpmn:completionCondition>{expr}</bpmn:completionCondition>
      </bpmn:multiInstanceLoopCharacteristics>
      <bpmn:script>y = 2</bpmn:script>
    </bpmn:scriptTask>""",
        "False",
    ),
    Site(
        "loop-condition",
        """    <bpmn:scriptTask id="site" name="Again" scriptFormat="python">
      <bpmn:standardLoopCharacteristics testBefore="false" loopMaximum="2">
        <bpmn:loopCondition>{expr}</bpmn:loopCondition>
      </bpmn:standardLoopCharacteristics>
      <bpmn:script>y = 2</bpmn:script>
    </bpmn:scriptTask>""",
        "False",
    ),
    Site(
        "ad-hoc-completion",
        """    <bpmn:adHocSubProcess id="site" name="Ad hoc">
      <bpmn:scriptTask id="inner" name="Inner" scriptFormat="python">
        <bpmn:script>y = 2</bpmn:script>
      </bpmn:scriptTask>
      <bpmn:completionCondition>{expr}</bpmn:completionCondition>
    </bpmn:adHocSubProcess>""",
        "True",
        refused="unsupported",
    ),
    Site(
        "conditional-event",
        """    <bpmn:intermediateCatchEvent id="site" name="Wait until">
      <bpmn:conditionalEventDefinition id="cond_def">
        <bpmn:condition xsi:type="bpmn:tFormalExpression">{expr}</bpmn:condition>
      </bpmn:conditionalEventDefinition>
    </bpmn:intermediateCatchEvent>""",
        "True",
    ),
    Site(
        "timer",
        """    <bpmn:intermediateCatchEvent id="site" name="Wait">
      <bpmn:timerEventDefinition id="timer_def">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">{expr}</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>""",
        '"PT1H"',
    ),
    Site(
        "message-payload",
        """    <bpmn:intermediateThrowEvent id="site" name="Tell">
      <bpmn:messageEventDefinition id="throw_def" messageRef="told">
        <bpmn:extensionElements>
          <spiffworkflow:messagePayload>{expr}</spiffworkflow:messagePayload>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:intermediateThrowEvent>""",
        '{"a": 1}',
        before='  <bpmn:message id="told" name="told"/>\n',
    ),
    Site(
        "correlation-message-path",
        """    <bpmn:intermediateCatchEvent id="site" name="Documents">
      <bpmn:messageEventDefinition id="catch_def" messageRef="docs"/>
    </bpmn:intermediateCatchEvent>""",
        "customer_id",
        before="""  <bpmn:message id="docs" name="docs"/>
  <bpmn:correlationProperty id="customer" name="customer">
    <bpmn:correlationPropertyRetrievalExpression messageRef="docs">
      <bpmn:formalExpression>{expr}</bpmn:formalExpression>
    </bpmn:correlationPropertyRetrievalExpression>
  </bpmn:correlationProperty>
""",
        reached_by="message",
    ),
    Site(
        "service-parameter",
        """    <bpmn:serviceTask id="site" name="Call">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="bureau.score">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="customer" type="str" value={attr}/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>""",
        "customer_id",
        reached_by="never",
    ),
)
