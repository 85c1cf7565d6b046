from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bankflow.definitions._metadata import extract_elements
from bankflow.models import ElementInfo, FormField

CORPUS = Path(__file__).parents[2].parent / "shared" / "bpmn-corpus"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def _definitions(body: str, *, prefix: str = "bpmn", extra_ns: str = "") -> str:
    ns = f"xmlns:{prefix}" if prefix else "xmlns"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{prefix + ":" if prefix else ""}definitions {ns}="{BPMN}"\n'
        f'    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"\n'
        f'    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"\n'
        f'    {extra_ns} id="defs">\n'
        f"{body}\n"
        f"</{prefix + ':' if prefix else ''}definitions>"
    )


def _extract(body: str, process_id: str = "p", **kwargs: str) -> dict[str, ElementInfo]:
    root = etree.fromstring(_definitions(body, **kwargs).encode())
    return {e.element_id: e for e in extract_elements(root, process_id=process_id)}


# -- which elements -------------------------------------------------------------------


def test_flow_nodes_subprocess_children_and_boundary_events_only() -> None:
    body = """
  <bpmn:process id="p">
    <bpmn:startEvent id="start" name=" Begin "/>
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="subStart"/>
      <bpmn:transaction id="tx"><bpmn:task id="deep"/></bpmn:transaction>
      <bpmn:sequenceFlow id="subFlow" sourceRef="subStart" targetRef="tx"/>
    </bpmn:subProcess>
    <bpmn:adHocSubProcess id="adhoc"><bpmn:manualTask id="m"/></bpmn:adHocSubProcess>
    <bpmn:boundaryEvent id="timer" attachedToRef="sub"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
    <bpmn:dataObject id="obj"/>
    <bpmn:dataObjectReference id="objRef" dataObjectRef="obj"/>
  </bpmn:process>
  <bpmn:process id="other"><bpmn:task id="elsewhere"/></bpmn:process>"""
    infos = _extract(body)
    assert list(infos) == [
        "start",
        "sub",
        "subStart",
        "tx",
        "deep",
        "adhoc",
        "m",
        "timer",
        "end",
    ]
    assert infos["start"].name == "Begin"
    assert infos["start"].element_type == "startEvent"
    assert infos["adhoc"].element_type == "adHocSubProcess"
    assert {i.process_id for i in infos.values()} == {"p"}
    start_line = (
        _definitions(body).splitlines().index('    <bpmn:startEvent id="start" name=" Begin "/>')
    )
    assert infos["start"].line == start_line + 1


def test_unknown_process_yields_nothing() -> None:
    assert _extract('<bpmn:process id="p"><bpmn:task id="t"/></bpmn:process>', "nope") == {}


def test_element_without_id_is_skipped_but_its_children_are_kept() -> None:
    infos = _extract(
        """
  <bpmn:process id="p">
    <bpmn:task name="no id"/>
    <bpmn:task id="  " name="blank id"/>
    <bpmn:subProcess><bpmn:userTask id="inner"/></bpmn:subProcess>
    <bpmn:task id=" padded "/>
  </bpmn:process>"""
    )
    assert list(infos) == ["inner", "padded"]


@pytest.mark.parametrize("prefix", ["bpmn2", "model", "semantic", ""])
def test_namespace_matched_by_uri_whatever_the_prefix(prefix: str) -> None:
    p = f"{prefix}:" if prefix else ""
    body = (
        f'<{p}process id="p"><{p}userTask id="t" camunda:candidateGroups="ops">'
        f"<{p}documentation>Do it</{p}documentation></{p}userTask></{p}process>"
    )
    info = _extract(body, prefix=prefix)["t"]
    assert info.candidate_groups == ("ops",)
    assert info.documentation == "Do it"


def test_elements_in_a_foreign_namespace_are_ignored() -> None:
    infos = _extract(
        """
  <bpmn:process id="p">
    <other:task xmlns:other="urn:not-bpmn" id="fake"/>
    <bpmn:task id="real" other:candidateGroups="x" xmlns:other="urn:not-bpmn"/>
  </bpmn:process>"""
    )
    assert list(infos) == ["real"]
    assert infos["real"].candidate_groups == ()


# -- lanes ----------------------------------------------------------------------------


def test_lanes_nested_and_inherited_by_subprocess_children() -> None:
    infos = _extract(
        """
  <bpmn:process id="p">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="bank" name="Bank">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef> review </bpmn:flowNodeRef>
        <bpmn:flowNodeRef>sub</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>quiet</bpmn:flowNodeRef>
        <bpmn:childLaneSet id="cls">
          <bpmn:lane id="back" name="Back office">
            <bpmn:flowNodeRef>review</bpmn:flowNodeRef>
            <bpmn:flowNodeRef>sub</bpmn:flowNodeRef>
            <bpmn:childLaneSet id="cls2">
              <bpmn:lane id="kyc" name="KYC"><bpmn:flowNodeRef>review</bpmn:flowNodeRef></bpmn:lane>
            </bpmn:childLaneSet>
          </bpmn:lane>
          <bpmn:lane id="unnamed"><bpmn:flowNodeRef>quiet</bpmn:flowNodeRef></bpmn:lane>
        </bpmn:childLaneSet>
      </bpmn:lane>
      <bpmn:lane id="front" name="Front office">
        <bpmn:flowNodeRef>inSubWithOwnLane</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="review"/>
    <bpmn:task id="quiet"/>
    <bpmn:subProcess id="sub">
      <bpmn:task id="inSub"/>
      <bpmn:task id="inSubWithOwnLane"/>
      <bpmn:subProcess id="nested"><bpmn:task id="deep"/></bpmn:subProcess>
    </bpmn:subProcess>
    <bpmn:endEvent id="laneless"/>
  </bpmn:process>"""
    )
    assert infos["start"].lane == "Bank"
    assert infos["review"].lane == "KYC"
    assert infos["quiet"].lane == "Bank"
    assert infos["sub"].lane == "Back office"
    assert infos["inSub"].lane == "Back office"
    assert infos["deep"].lane == "Back office"
    assert infos["inSubWithOwnLane"].lane == "Front office"
    assert infos["laneless"].lane is None


# -- camunda attributes ---------------------------------------------------------------


def test_camunda_attributes() -> None:
    info = _extract(
        """
  <bpmn:process id="p">
    <bpmn:userTask id="t" name="Approve"
        camunda:candidateGroups=" credit , risk,, "
        camunda:candidateUsers="alice,bob "
        camunda:assignee=" ${initiator} "
        camunda:dueDate="${dateTime().plusDays(2).toDate()}"
        camunda:priority="70"
        camunda:formKey="embedded:app:forms/approve.html"
        spiffworkflow:whatever="ignored">
      <bpmn:documentation>
        Check the limit.
      </bpmn:documentation>
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="a" value="b"/>
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
  </bpmn:process>"""
    )["t"]
    assert info.candidate_groups == ("credit", "risk")
    assert info.candidate_users == ("alice", "bob")
    assert info.assignee == "${initiator}"
    assert info.due_date == "${dateTime().plusDays(2).toDate()}"
    assert info.priority == "70"
    assert info.form_key == "embedded:app:forms/approve.html"
    assert info.documentation == "Check the limit."
    assert info.form_fields == ()


def test_absent_and_blank_attributes_are_none() -> None:
    info = _extract(
        """
  <bpmn:process id="p">
    <bpmn:userTask id="t" camunda:assignee="  " camunda:candidateGroups="">
      <bpmn:documentation>   </bpmn:documentation>
    </bpmn:userTask>
  </bpmn:process>"""
    )["t"]
    assert info.name is None
    assert info.assignee is None
    assert info.candidate_groups == ()
    assert info.documentation is None
    assert info.due_date is None
    assert info.priority is None
    assert info.form_key is None


def test_form_ref_used_when_form_key_missing() -> None:
    infos = _extract(
        """
  <bpmn:process id="p">
    <bpmn:userTask id="ref" camunda:formRef="loanForm"/>
    <bpmn:userTask id="both" camunda:formKey="key" camunda:formRef="ref"/>
  </bpmn:process>"""
    )
    assert infos["ref"].form_key == "loanForm"
    assert infos["both"].form_key == "key"


# -- form fields ----------------------------------------------------------------------


def test_form_fields_with_constraints_and_enum_values() -> None:
    info = _extract(
        """
  <bpmn:process id="p">
    <bpmn:userTask id="t">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="amount" label="Amount" type="long" defaultValue="0">
            <camunda:validation>
              <camunda:constraint name="required"/>
              <camunda:constraint name="min" config="1"/>
              <camunda:constraint config="no name"/>
            </camunda:validation>
          </camunda:formField>
          <camunda:formField id="currency" type="enum" defaultValue="EUR">
            <camunda:validation>
              <camunda:constraint name="required" config="false"/>
              <camunda:constraint name="readonly" config="true"/>
            </camunda:validation>
            <camunda:value id="EUR" name="Euro"/>
            <camunda:value id="CHF"/>
            <camunda:value name="no id"/>
          </camunda:formField>
          <camunda:formField label="no id"/>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
  </bpmn:process>"""
    )["t"]
    assert info.form_fields == (
        FormField(
            id="amount",
            label="Amount",
            type="long",
            default_value="0",
            required=True,
            constraints={"required": None, "min": "1"},
        ),
        FormField(
            id="currency",
            type="enum",
            default_value="EUR",
            required=False,
            readonly=True,
            constraints={"required": "false", "readonly": "true"},
            enum_values={"EUR": "Euro", "CHF": None},
        ),
    )


# -- standard resource assignment -----------------------------------------------------


def _owner(text: str, role: str = "potentialOwner") -> str:
    return (
        f"<bpmn:{role}><bpmn:resourceAssignmentExpression>"
        f"<bpmn:formalExpression>{text}</bpmn:formalExpression>"
        f"</bpmn:resourceAssignmentExpression></bpmn:{role}>"
    )


def test_potential_owner_and_human_performer() -> None:
    infos = _extract(
        f"""
  <bpmn:process id="p">
    <bpmn:userTask id="plain">{_owner(" manager ")}</bpmn:userTask>
    <bpmn:userTask id="performer">{_owner("Team Assistant", "humanPerformer")}</bpmn:userTask>
    <bpmn:userTask id="list">{_owner("credit, risk")}{_owner("risk")}</bpmn:userTask>
    <bpmn:userTask id="functions">{_owner("user(kermit), group(management, sales)")}</bpmn:userTask>
    <bpmn:userTask id="expression">{_owner("${{approverGroups}}")}</bpmn:userTask>
    <bpmn:userTask id="script">{_owner("getGroups(task), fallback")}</bpmn:userTask>
    <bpmn:userTask id="camundaWins" camunda:candidateUsers="alice">
      {_owner("manager")}
    </bpmn:userTask>
    <bpmn:userTask id="byRef">
      <bpmn:potentialOwner><bpmn:resourceRef>Resource_1</bpmn:resourceRef></bpmn:potentialOwner>
    </bpmn:userTask>
  </bpmn:process>"""
    )
    assert infos["plain"].candidate_groups == ("manager",)
    assert infos["performer"].candidate_groups == ("Team Assistant",)
    assert infos["list"].candidate_groups == ("credit", "risk")
    assert infos["functions"].candidate_users == ("kermit",)
    assert infos["functions"].candidate_groups == ("management", "sales")
    for ignored in ("expression", "script", "byRef"):
        assert infos[ignored].candidate_groups == ()
        assert infos[ignored].candidate_users == ()
    assert infos["camundaWins"].candidate_groups == ()
    assert infos["camundaWins"].candidate_users == ("alice",)


# -- odd input ------------------------------------------------------------------------


def test_comments_processing_instructions_and_cdata_do_not_break_anything() -> None:
    infos = _extract(
        """
  <bpmn:process id="p">
    <!-- a comment -->
    <?tool hint?>
    <bpmn:laneSet><!-- c --><bpmn:lane name="L"><!-- c --><bpmn:flowNodeRef/>
      <bpmn:flowNodeRef>t</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:userTask id="t"><!-- c --><bpmn:documentation><![CDATA[<b>bold</b>]]></bpmn:documentation>
      <bpmn:extensionElements><!-- c --><camunda:formData><!-- c -->
        <camunda:formField id="f"><!-- c --></camunda:formField></camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
  </bpmn:process>"""
    )
    assert infos["t"].lane == "L"
    assert infos["t"].documentation == "<b>bold</b>"
    assert infos["t"].form_fields == (FormField(id="f"),)


# -- real files -----------------------------------------------------------------------


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        p for p in CORPUS.rglob("*") if p.name.endswith((".bpmn", ".bpmn20.xml")) and p.is_file()
    )


@pytest.mark.slow
def test_every_corpus_process_extracts_without_raising() -> None:
    files = _corpus_files()
    if not files:
        pytest.skip(f"no BPMN corpus at {CORPUS}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    processes = 0
    for path in files:
        root = etree.parse(str(path), parser).getroot()
        for process in root.iter(f"{{{BPMN}}}process"):
            process_id = process.get("id")
            if process_id is None:
                continue
            infos = extract_elements(root, process_id=process_id.strip())
            assert all(i.process_id == process_id.strip() for i in infos), path
            processes += 1
    assert processes > 0


def test_camunda_invoice_user_task() -> None:
    path = CORPUS / "camunda-bpm-platform-invoice" / "invoice.v2.bpmn"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    root = etree.fromstring(path.read_bytes())
    infos = {e.element_id: e for e in extract_elements(root, process_id="invoice")}

    transfer = infos["prepareBankTransfer"]
    assert transfer.element_type == "userTask"
    assert transfer.name == "Prepare\nBank\nTransfer"
    assert transfer.lane == "Accountant"
    assert transfer.candidate_groups == ("accounting",)
    assert transfer.candidate_users == ()
    assert transfer.due_date == "${dateTime().plusWeeks(1).toDate()}"
    assert transfer.form_key == "embedded:app:forms/prepare-bank-transfer.html"
    assert transfer.documentation == "Prepare the bank transfer."
    assert transfer.form_fields == ()  # the invoice demo uses embedded HTML forms

    assert infos["approveInvoice"].candidate_groups == ("${approverGroups}",)
    assert infos["approveInvoice"].lane == "Approver"
    assert infos["reviewInvoice"].element_type == "callActivity"
    assert "SequenceFlow_1" not in infos
    assert "DataStoreReference_1" not in infos


def test_instantiating_receive_tasks_and_gateway_events_carry_message_start_triggers() -> None:
    """They start the process on their message, so deploy stores their triggers; the same
    elements elsewhere (an incoming flow, no instantiate) start nothing."""
    elements = _extract(
        '<bpmn:message id="m1" name="one"/><bpmn:message id="m2" name="two"/>'
        '<bpmn:process id="p" isExecutable="true">'
        '<bpmn:receiveTask id="r" messageRef="m1" instantiate="true"/>'
        '<bpmn:eventBasedGateway id="g" instantiate="true"/>'
        '<bpmn:intermediateCatchEvent id="c"><bpmn:messageEventDefinition messageRef="m2"/>'
        "</bpmn:intermediateCatchEvent>"
        '<bpmn:receiveTask id="later" messageRef="m2"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="g" targetRef="c"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="r" targetRef="later"/>'
        "</bpmn:process>"
    )
    triggers = {key: e.trigger for key, e in elements.items()}
    assert triggers == {
        "r": {"kind": "message", "name": "one"},
        "g": None,
        "c": {"kind": "message", "name": "two"},
        "later": None,
    }
