"""Each stage's output of one record, as the Records browser and the Review page both show it."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from vidthinker.schema import StageTrace, VideoITGRecord


def show_stage_outputs(record: VideoITGRecord, *, detail: bool, lead: Callable[[], None] | None = None) -> None:
    """Stage 2 and 3 on the left (after `lead`, when given), stage 1's captions on the right.

    `detail` adds what an engineer debugging a record wants and a reviewer does not: every call's trace
    (model, prompt hash, latency, tokens, error, raw output), caption costs and the provenance."""
    left, right = st.columns([2, 3])
    with left:
        if lead is not None:
            lead()
        st.markdown("##### Stage 2 · retrieval")
        if record.retrieval is None:
            st.caption("not reached")
        else:
            r = record.retrieval
            model = "" if detail else f" · model `{r.trace.model}`"
            st.markdown(f"clips `{r.clip_ids}` · type **{r.instruction_type or '–'}**{model}")
            st.info(r.explanation or "(no explanation)")
            if detail:
                show_trace(r.trace)
        st.markdown("##### Stage 3 · localization")
        if record.localization is None:
            st.caption("not reached")
        else:
            loc = record.localization
            st.markdown(f"policy **`{loc.policy}`**  \ncandidates `{loc.candidate_frame_ids}`  \nkept `{loc.frame_ids}`  \n"
                        f"dropped duplicates `{loc.duplicate_frame_ids}`  \nrejected by VLM check `{loc.rejected_frame_ids}`")
            if detail:
                show_trace(loc.trace)
    with right:
        st.markdown("##### Stage 1 · clip captions")
        if not record.captions:
            st.caption("not reached")
        else:
            rows = []
            for c in record.captions:
                row = {"clip": c.clip_id, "caption": c.caption, "keywords": ", ".join(c.keywords)}
                if detail:
                    usage = c.trace.usage
                    row.update({"model": c.trace.model, "latency s": c.trace.latency_s,
                                "prompt tok": usage.prompt_tokens, "completion tok": usage.completion_tokens,
                                "calls": usage.calls, "error": c.trace.error})
                rows.append(row)
            st.dataframe(pd.DataFrame(rows), hide_index=True,
                         column_config={"caption": st.column_config.TextColumn(width="large")})
        if detail:
            with st.expander("provenance"):
                st.json(record.provenance.model_dump(mode="json"))


def show_trace(trace: StageTrace) -> None:
    usage = trace.usage
    st.caption(f"model `{trace.model}` · prompt `{trace.prompt_hash}` · {trace.latency_s:.2f} s · "
               f"{usage.prompt_tokens}+{usage.completion_tokens} tokens · {usage.calls} call(s)")
    if trace.error:
        st.warning(trace.error)
    if trace.raw_output:
        with st.expander("raw model output"):
            st.code(trace.raw_output, language="json" if trace.raw_output.lstrip().startswith("{") else None)
