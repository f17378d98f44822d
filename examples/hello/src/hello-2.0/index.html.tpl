<!doctype html>
<html>
<head><title>{{site.title}}: hello {{release.version}}</title></head>
<body style="background: {{release.colour}}; color: white; font-family: sans-serif">
<h1>hello {{release.version}}</h1>
<p>{{site.title}}: release {{release.version}} ({{release.colour}}), served on port {{ports.http}}.</p>
</body>
</html>
