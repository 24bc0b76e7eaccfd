"""Resources the service serves: the caller's runs, the tenant's data directories, thumbnails.

URIs use the scheme `mcp-realtime` (docs/resources.md has the list). Built-ins register into
`registry.resources` when imported (the app's `ready`); an app or a test fixture registers
its own the same way. Each entry has a `Scope`: the tenants (slugs) that see it (None: all)
and a tool it needs in the tenant's tool set (None: none). Readers, renderers and completers
are plain functions run on a database thread, called with keyword arguments only.

A fixed resource, seen by tenant `conformance` only::

    from mcp_server.protocol.resources import text_contents
    from mcp_server.resources.registry import Scope, resources

    ONLY_CONFORMANCE = Scope(tenants=frozenset({"conformance"}))

    resources.add_resource(
        "test://static-text",
        name="static-text",
        mime_type="text/plain",
        scope=ONLY_CONFORMANCE,
        read=lambda *, principal, uri: [text_contents(uri, "hello", "text/plain")],
    )

A resource template (its variables are the reader's keyword arguments; `complete` suggests
values of a variable for completion/complete with `ref/resource`)::

    resources.add_template(
        "test://template/{id}/data",
        name="template",
        mime_type="application/json",
        scope=ONLY_CONFORMANCE,
        read=lambda *, principal, uri, id: [text_contents(uri, f'{{"id": "{id}"}}', JSON)],
        complete={"id": lambda *, principal, value, context: ["1", "2"]},
    )

A prompt with arguments (checked before `render` runs: strings, none unknown, the required
ones given; `complete` serves completion/complete with `ref/prompt`)::

    from mcp_server.prompts.registry import prompts
    from mcp_server.protocol.prompts import PromptArgument, user_text

    prompts.add(
        "test_prompt_with_arguments",
        description="A prompt with arguments",
        arguments=(PromptArgument("arg1", "First", required=True), PromptArgument("arg2")),
        scope=ONLY_CONFORMANCE,
        render=lambda *, principal, arguments: [user_text(f"arg1={arguments['arg1']}")],
    )

A reader raises `ResourceNotFound` for a URI it does not have (answered -32002, as for
another caller's run); a renderer raises `invalid_params(...)` for a value it cannot use.
"""
