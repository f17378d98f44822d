<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>c2</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .25em .9em .25em 0; border-bottom: 1px solid #ddd; vertical-align: top; }
th { font-weight: 600; color: #555; }
.ok { color: #17702a; }
.bad { color: #b3261e; font-weight: 600; }
.none { color: #888; }
.lock { background: #fff3cd; border: 1px solid #e0c36a; padding: .5em .8em; display: inline-block; }
code, .events { font-family: ui-monospace, monospace; font-size: 12.5px; }
.events { white-space: pre-wrap; margin: 0; }
footer { margin-top: 2em; color: #888; font-size: 12px; }
</style>
</head>
<body>
<h1>c2</h1>
{{#lock}}<p class="lock" id="lock">Deploys are locked by {{lock}}</p>{{/lock}}
{{^proxy}}
<h2>Live release</h2>
<table id="current">
<tr><th>Current</th><td>{{#current.label}}{{current.label}}{{#current.release}} ({{current.release}}){{/current.release}}{{/current.label}}{{^current.label}}<span class="none">none</span>{{/current.label}}</td></tr>
<tr><th>Previous</th><td>{{#previous}}{{previous}}{{/previous}}{{^previous}}<span class="none">none</span>{{/previous}}</td></tr>
</table>
{{/proxy}}
{{#proxy}}
<h2>Endpoints</h2>
<table id="endpoints">
<tr><th>Endpoint</th><th>Server names</th><th>Deploy</th><th>Previous</th></tr>
{{#endpoints}}
<tr class="endpoint" data-name="{{name}}"><td>{{name}}</td><td>{{#serverNames}}{{.}} {{/serverNames}}</td><td class="deploy">{{#deploy}}{{deploy}}{{/deploy}}{{^deploy}}<span class="none">not connected</span>{{/deploy}}</td><td>{{previous}}</td></tr>
{{/endpoints}}
</table>
<h2>Deploys</h2>
<table id="deploys">
<tr><th>Deploy</th><th>Release</th><th>Port</th><th>Endpoints</th><th>Health</th>{{#fleet}}<th>Slaves</th>{{/fleet}}</tr>
{{#deploys}}
<tr class="deploy" data-label="{{label}}"><td>{{label}}</td><td>{{release}}</td><td>{{port}}</td><td>{{endpoints}}</td><td class="health">{{#health}}<span class="{{#healthy}}ok{{/healthy}}{{^healthy}}bad{{/healthy}}">{{health}}</span>{{/health}}{{^health}}<span class="none">no check</span>{{/health}}</td>{{#fleet}}<td>{{#slaves}}<span class="{{#ok}}ok{{/ok}}{{^ok}}bad{{/ok}}">{{name}}: {{state}}</span><br>{{/slaves}}</td>{{/fleet}}</tr>
{{/deploys}}
</table>
<p id="ports">Ports: {{ports.used}} of {{ports.total}} in use</p>
{{#fleet}}
<h2>Slaves</h2>
<table id="slaves">
<tr><th>Slave</th><th>Address</th><th>Host</th><th>In sync</th><th>Report age</th><th>Status</th><th>Ports used</th></tr>
{{#slaves}}
<tr class="slave" data-label="{{label}}"><td>{{label}}</td><td>{{ipAddress}}</td><td>{{hostName}}</td><td>{{#inSync}}<span class="ok">yes</span>{{/inSync}}{{^inSync}}<span class="bad">no</span>{{/inSync}}</td><td>{{reportAgeSeconds}} s{{^live}} <span class="bad">(silent)</span>{{/live}}</td><td>{{status}}</td><td class="capacity">{{ports.used}} of {{ports.total}}</td></tr>
{{/slaves}}
</table>
{{/fleet}}
{{/proxy}}
<h2>History</h2>
<pre class="events" id="history">{{#events}}{{.}}
{{/events}}{{^events}}No changes yet.{{/events}}</pre>
<footer>Rendered at {{generated}}; this page refreshes every 5 seconds.</footer>
</body>
</html>
