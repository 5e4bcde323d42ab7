"""An agent host built on the official MCP Python SDK (`mcp`), for the tests.

It connects to objectos over stdio (launching `objectos mcp`) or over
Streamable HTTP, lists the tools, makes the calls a plan names, and prints one
JSON document with everything it saw. The agent key comes from
`OBJECTOS_API_KEY`.

    client.py --transport stdio|http --mode auto|legacy|2025-06-18 --url URL
              [--objectos BIN] [--wrap JSON-LIST] [--child-env JSON-OBJECT] < plan.json

plan.json: {"calls": [{"tool": "query_records", "args": {...}}, ...]}
"""

import argparse
import asyncio
import json
import os
import sys

import httpx2
import mcp.client.session
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def use(target, mode, plan):
    out = {"calls": []}
    async with Client(target, mode=mode) as client:
        session = client.session
        out["protocol"] = session.protocol_version
        if session.initialize_result is not None:
            out["era"] = "legacy"
            out["server"] = dump(session.initialize_result.server_info)
        else:
            out["era"] = "modern"
            out["server"] = dump(session.discover_result)
        tools = await client.list_tools()
        out["tools"] = [dump(t) for t in tools.tools]
        for call in plan.get("calls", []):
            entry = {"tool": call["tool"]}
            try:
                result = await client.call_tool(call["tool"], call.get("args", {}))
                entry["is_error"] = bool(result.is_error)
                entry["structured"] = result.structured_content
                entry["text"] = [c.text for c in result.content if getattr(c, "type", "") == "text"]
            except MCPError as e:
                entry["protocol_error"] = {"code": e.error.code, "message": e.error.message}
            out["calls"].append(entry)
    return out


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--transport", choices=["stdio", "http"], required=True)
    p.add_argument("--mode", default="auto")
    p.add_argument("--url", required=True)
    p.add_argument("--objectos", default="objectos")
    p.add_argument("--wrap", default="[]")
    p.add_argument("--child-env", default="{}")
    a = p.parse_args()
    plan = json.load(sys.stdin)
    key = os.environ["OBJECTOS_API_KEY"]
    mode = a.mode
    if mode == "2025-06-18":
        # The SDK offers 2025-11-25 in `initialize`; an older host offers this.
        mcp.client.session.LATEST_HANDSHAKE_VERSION = "2025-06-18"
        mode = "legacy"
    if a.transport == "stdio":
        wrap = json.loads(a.wrap)
        command = (wrap + [a.objectos])[0]
        args = (wrap + [a.objectos])[1:] + ["mcp", "--server", a.url]
        env = {"OBJECTOS_API_KEY": key}
        env.update(json.loads(a.child_env))
        target = StdioServerParameters(command=command, args=args, env=env)
        out = await use(target, mode, plan)
    else:
        headers = {"Authorization": "Bearer " + key}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
            out = await use(streamable_http_client(a.url + "/api/v1/mcp", http_client=http), mode, plan)
    json.dump(out, sys.stdout)


asyncio.run(main())
