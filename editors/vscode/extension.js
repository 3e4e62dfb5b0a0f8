// Starts `wengert lsp` (stdio) for .dl files; the server does the rest (docs/editors.md).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("wengert").get("server.command");
  client = new LanguageClient(
    "wengert",
    "wengert",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "wengert" }, { scheme: "untitled", language: "wengert" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
