<!doctype html>
<title>{{site.title}}</title>
<h1>{{site.title}}</h1>
<p>Release {{release.version}} ({{release.colour}}) deployed by c2.</p>
{{#site.links}}
<a href="{{url}}">{{name}}</a>
{{/site.links}}
